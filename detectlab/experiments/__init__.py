"""The papers' experiments on any labelled folder: cross-generator generalization, trace risk, embeddings,
set distances, calibration and format audits, each with a reproducibility card (no Gradio here)."""
