"""The Gradio app: one module per tab. Tabs only wire widgets to package functions."""
