"""The shipped default detectors: fixed configs, trained on the demo by ``detectlab checkpoints build``."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from detectlab import config
from detectlab.degrade import DegradeAugConfig
from detectlab.generators.designs import RESIDUAL
from detectlab.models.manifest import read_manifest, update_manifest
from detectlab.progress import NEVER_CANCEL, CancelToken, Progress, null_progress
from detectlab.train.config import CNN_DEMO, MID_PROBE_DEMO, POSTPROCESS_AUG, TrainConfig, preset_fields
from detectlab.train.engine import train
from detectlab.train.layout import RunLayout

#: The demo's first three designs (the residual net with each up-sampling family, spectral loss): what the three
#: ResNet-18 detectors train on. Trained on the whole train group instead (five designs, two of them soft: a latent
#: decoder with pixel loss, a denoiser), cnn-resnet18 called 33 % of the validation reals fake after a σ 1 blur and
#: 37 % after a 2× down-up, its CNNDetection twin 30 % and 24 % (targets ≤ 15 %, which the three-design ones meet),
#: so the shipped ones keep the three; README, "Generalization".
RESIDUAL_DESIGNS = list(RESIDUAL)

#: name -> (TrainConfig fields, what it is); the fields' ``generators`` default to the demo's train group
DEFAULTS: dict[str, tuple[dict, str]] = {
    "cnn-resnet18": (
        dict(CNN_DEMO, generators=RESIDUAL_DESIGNS),
        "ResNet-18 trained end to end from random init on the demo (the fast CPU CNN; [Petrželková 2024] uses ResNet-50), "
        "with mild blur / JPEG / downsize post-processing on both classes (p = 0.2 each; blur sigma <= 1.5, JPEG "
        "quality >= 60, downsize scale >= 0.5) so a soft or re-compressed photo is no shortcut to 'fake'"),
    "univfd-mobilenet_v2": (
        dict(MID_PROBE_DEMO),
        "UnivFD-style linear probe ([DFwF]) on frozen ImageNet MobileNetV2 features — its mid-level stages "
        "(spatial mean and std of each stage output down to stride 16, standardized), not its last layer, and "
        "not CLIP: no CLIP weights can be had offline. The last-layer probe of the paper reached 0.868 test "
        "accuracy on the demo and called 15 % of held-out real photos fake; the stages were chosen on the "
        "validation split"),
    "ensemble-mobilenet_v2+efficientnet_lite0": (
        dict(MID_PROBE_DEMO, arch="frozen:mobilenet_v2_mid+efficientnet_lite0_mid"),
        "two frozen ImageNet backbones (MobileNetV2, EfficientNet-Lite0), their mid-level stage statistics "
        "concatenated + linear head ([DFwF] §4.3); the last-layer ensemble reached 0.909 test accuracy"),
    # the Train tab's presets of the same names train exactly these
    "cnn-resnet18-aug": (
        dict(preset_fields("CNNDetection augmentation (blur+JPEG+downsize, p=0.5)"), generators=RESIDUAL_DESIGNS),
        "cnn-resnet18 re-trained with blur + JPEG + downsize augmentation (CNNDetection's recipe: each p = 0.5, "
        "blur sigma in [0, 3], JPEG quality in [30, 100]; downsize scale in [0.5, 1]) for 10 epochs at lr 1e-4 "
        "from cnn-resnet18's weights — [Petrželková 2024] §4.3's robust twin"),
    "cnn-resnet18-adv": (
        dict(preset_fields("FGSM adversarial training"), generators=RESIDUAL_DESIGNS),
        "cnn-resnet18 re-trained with FGSM adversarial training ([Petrželková 2024] §4.4.2) for 4 epochs from cnn-resnet18's "
        "weights: half of each batch replaced by FGSM copies at eps drawn from {0.005, 0.01, 0.02}, made on the "
        "fly from the weights being trained"),
    "spectrum-durrall": (
        dict(arch="spectrum:durrall", input_size=128, epochs=4, seed=0, augment=DegradeAugConfig(**POSTPROCESS_AUG)),
        "Durrall 2019 spectrum baseline ([Petrželková 2024] Table 4.3): azimuthal average of the log spectrum + "
        "class-balanced logistic regression, fitted on the train split plus 4 copies with cnn-resnet18's mild "
        "blur / JPEG / downsize post-processing"),
}


def build_defaults(names: list[str] | None = None, data: Path | None = None, progress: Progress = null_progress,
                   cancel: CancelToken = NEVER_CANCEL) -> dict:
    """Train the default detectors on the demo and (re)write ``checkpoints/manifest.json``."""
    from detectlab.demo.build import ensure_demo

    from detectlab.generators.designs import HELD_OUT, TRAIN, designs_in

    data = data or ensure_demo()
    out = config.CHECKPOINT_DIR
    out.mkdir(parents=True, exist_ok=True)
    manifest = read_manifest()
    for name in names or list(DEFAULTS):
        fields, what = DEFAULTS[name]
        # the train group only: the held-out designs measure how far a verdict carries to a design never seen
        fields = {"generators": designs_in(TRAIN), **fields}
        cfg = TrainConfig(data=str(data), out_dir=str(RunLayout.default().run_dir("defaults")), name=name, **fields)
        start = time.perf_counter()
        run = train(cfg, progress=progress, cancel=cancel).runs[0]
        shutil.copy(run.checkpoint, out / f"{name}.safetensors")
        shutil.copy(Path(run.checkpoint).with_suffix(".json"), out / f"{name}.json")
        manifest = update_manifest(name, {
            "file": f"{name}.safetensors",
            "arch": cfg.arch,
            "description": what,
            "backbone_weights": run.weights,
            "command": f"detectlab checkpoints build --only {name}",
            "config": {k: v for k, v in cfg.to_dict().items() if k not in ("data", "out_dir")},
            "data": f"assets/demo: reals and {'the train group' if cfg.generators == designs_in(TRAIN) else 'part of the train group'}"
                    f"'s generator designs ({', '.join(cfg.generators)}), split 80/10/10 by source photo, seed 0; the "
                    f"held-out designs ({', '.join(designs_in(HELD_OUT))}) are never trained on",
            "test": {k: run.test.get(k) for k in ("n", "accuracy", "balanced_accuracy", "ap", "roc_auc",
                                                   "real_accuracy", "fake_accuracy", "accuracy_at_best")},
            "test_per_generator": {g: {k: m.get(k) for k in ("n", "accuracy", "ap")} for g, m in
                                   (run.test.get("per_group") or {}).items()},
            "best_epoch": run.best_epoch,
            "train_seconds": round(time.perf_counter() - start, 1),
            "images_per_second": round(run.images_per_second, 1),
        })
    return manifest
