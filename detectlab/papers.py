"""The three papers DetectLab reproduces, their short keys, and the numbers of theirs the app compares with.

Every comparison with a paper in the app, the README and the tests reads its numbers here, so a
value is typed once. Keys as README's References section cites them:

- [Wimmer 2024]: G. Wimmer, D. Söllinger, A. Uhl, "The Risk of Image Generator-Specific Traces in
  Synthetic Training Data" (BicycleGAN / Palette traces; Tables 2, 3: trace-risk compositions).
- [Petrželková 2024]: N. Petrželková, "Synthetic Image Detection", master's thesis, CTU Prague, 2024
  (cross-generator Tables 4.1, 4.2; spectrum baseline Table 4.3; attacks Tables
  4.4-4.7; localization Table 4.8; robustness §4.3).
- [DFwF]: "Detect Fake with Fake: Leveraging Synthetic Data-driven Representation for Synthetic Image
  Detection", arXiv:2409.08884 (frozen pretrained backbones with a linear probe; mid-level features).
"""

from __future__ import annotations

#: Short key -> what it names (README "References" gives the full entries).
REFERENCES = {
    "Wimmer 2024": "Wimmer, Söllinger, Uhl: The Risk of Image Generator-Specific Traces in Synthetic Training Data",
    "Petrželková 2024": "Petrželková: Synthetic Image Detection (master's thesis, CTU Prague, 2024)",
    "DFwF": "Detect Fake with Fake: frozen pretrained features with a linear probe",
}

# -- [Petrželková 2024], attacks ---------------------------------------------------------------
#: Table 4.4, cross-sample confusion rate in % (architecture -> eps -> rate)
TABLE_4_4 = {"ResNet-50": {0.01: 2.20, 0.02: 67.40, 0.05: 100.0},
             "Xception": {0.01: 96.34, 0.02: 100.0, 0.05: 100.0},
             "ViT-tiny": {0.01: 8.63, 0.02: 25.88, 0.05: 97.25}}
#: Table 4.5, mirror models (two ResNet-50 on disjoint halves), FGSM eps 0.025: judge -> attacker -> %
TABLE_4_5 = {"ResNet-50+": {"ResNet-50+": 100.0, "ResNet-50-": 80.0},
             "ResNet-50-": {"ResNet-50+": 84.0, "ResNet-50-": 100.0}}
TABLE_4_5_EPS = 0.025
#: Table 4.6, cross-architecture: eps -> attacker (row) -> judge (column) -> %
TABLE_4_6_ARCHS = ("ResNet-50", "Xception", "ViT-tiny")
TABLE_4_6 = {0.01: [[100.0, 67.15, 7.30], [2.55, 100.0, 6.93], [0.39, 6.64, 59.77]],
             0.02: [[100.0, 100.0, 8.76], [48.54, 100.0, 8.39], [16.80, 89.06, 92.97]],
             0.05: [[100.0, 100.0, 15.69], [100.0, 100.0, 10.22], [100.0, 100.0, 100.0]]}
#: Table 4.7, ResNet-50, FGSM eps 0.05, Gaussian blur sigma 5, 274 fakes: case -> accuracy %, confusion %
TABLE_4_7 = {"accuracy": {"clean": 99.0, "blurred clean": 95.0, "adversarial": 3.2, "blurred adversarial": 78.0},
             "confusion": {"adversarial": 96.0, "blurred adversarial": 18.0}}

# -- [Petrželková 2024], localization ------------------------------------------------------------
#: Table 4.8, YOLOv8-seg mAP50 on the whole test set and by manipulated-area quartile
TABLE_4_8_MAP50 = {"all": 0.72, "Q1": 0.24, "Q2": 0.74, "Q3": 0.90, "Q4": 0.97}
#: §4.5 (the face-part inpainting set, before Table 4.8): a plain U-Net's test dice, 0.58
FACE_PARTS_UNET_DICE = 0.58
