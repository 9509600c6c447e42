"""Every built-in plugin, by kind and name, as a lazy target.

Built-ins are declared here, inside the package, so a plain source checkout
finds them without install metadata; third parties come in through the
entry-point groups of `avbench.registry`. Nothing named here is imported
until it is asked for. A target is "module:attr", except a suite's, which is
"package:file" (a JSON spec shipped in that package).
"""

from __future__ import annotations

MODELS = {
    "oracle": "avbench.models.sanity:OracleModel",
    "oracle-one": "avbench.models.sanity:OracleOneModel",
    "random": "avbench.models.sanity:RandomModel",
    "mixture": "avbench.models.sanity:MixtureModel",
    "avgas": "avbench.baselines.avgas.model:AVGAS",
    "sound2scene": "avbench.baselines.sound2scene.model:Sound2Scene",
    "macs": "avbench.baselines.macs.model:MACS",
    "davis": "avbench.baselines.davis.model:DAVIS",
}

METRICS = {
    "separation": "avbench.metrics.separation:SeparationMetric",
    "clip-retrieval": "avbench.metrics.retrieval:RetrievalMetric",
    "clip-per-source": "avbench.metrics.retrieval:PerSourceMetric",
    "clipscore": "avbench.metrics.alignment:ClipScoreMetric",
    "ais-iis": "avbench.metrics.alignment:AlignmentMetric",
    "fidelity": "avbench.metrics.fidelity:FidelityMetric",
    "cmmd": "avbench.metrics.distribution:CmmdMetric",
    "prdc": "avbench.metrics.distribution:PrdcMetric",
}

BACKBONES = {
    "clip-vit-b32-openai": "avbench.backbones.catalog:CLIP_VIT_B32_OPENAI",
    "clip-vit-l14-openai": "avbench.backbones.catalog:CLIP_VIT_L14_OPENAI",
    "clip-vit-l14-336-openai": "avbench.backbones.catalog:CLIP_VIT_L14_336_OPENAI",
    "dinov2-vitl14": "avbench.backbones.catalog:DINOV2_VITL14",
    "inception-v3-compat": "avbench.backbones.catalog:INCEPTION_V3_COMPAT",
    "inception-v3-vggsound": "avbench.backbones.catalog:INCEPTION_V3_VGGSOUND",
    "wav2clip": "avbench.backbones.catalog:WAV2CLIP",
    "clip-synth": "avbench.synth.catalog:CLIP_SYNTH",
    "audio-synth": "avbench.synth.catalog:AUDIO_SYNTH",
}

WEIGHTS = {
    "inception-v3-compat": "avbench.backbones.catalog:INCEPTION_V3_COMPAT_WEIGHTS",
    "clip-vit-b32-openai": "avbench.backbones.catalog:CLIP_VIT_B32_OPENAI_WEIGHTS",
    "clip-vit-l14-openai": "avbench.backbones.catalog:CLIP_VIT_L14_OPENAI_WEIGHTS",
    "clip-vit-l14-336-openai": "avbench.backbones.catalog:CLIP_VIT_L14_336_OPENAI_WEIGHTS",
    "dinov2-vitl14": "avbench.backbones.catalog:DINOV2_VITL14_WEIGHTS",
    "inception-v3-vggsound": "avbench.backbones.catalog:INCEPTION_V3_VGGSOUND_WEIGHTS",
    "wav2clip": "avbench.backbones.catalog:WAV2CLIP_WEIGHTS",
    "clip-synth": "avbench.synth.catalog:CLIP_SYNTH_WEIGHTS",
    "audio-synth": "avbench.synth.catalog:AUDIO_SYNTH_WEIGHTS",
}

SUITES = {
    name: f"avbench.suites.specs:{name}.json"
    for name in (
        "synth-single",
        "synth-mixed2",
        "synth-sep",
        "synth-mixed2-noisy",
        "vggsound-single",
        "mixed2",
        "mixed2-mini",
        "llp-multi",
        "music-2mix",
        "ave-2mix",
        "mixed2-clean",
        "mixed2-clean-mini",
        "vggsound-single-clean",
        "llp-multi-audio",
    )
}

MANIFEST_BUILDERS = {
    "vggsound-single": "avbench.suites.builders:build_vggsound_single",
    "mixed2": "avbench.suites.builders:build_mixed2",
    "mixed2-mini": "avbench.suites.builders:build_mixed2_mini",
    "llp-multi": "avbench.suites.builders:build_llp_multi",
    "music-2mix": "avbench.suites.builders:build_music_2mix",
    "ave-2mix": "avbench.suites.builders:build_ave_2mix",
    "mixed2-clean": "avbench.suites.audited:build_mixed2_clean",
    "mixed2-clean-mini": "avbench.suites.audited:build_mixed2_clean_mini",
    "vggsound-single-clean": "avbench.suites.audited:build_vggsound_single_clean",
    "llp-multi-audio": "avbench.suites.audited:build_llp_multi_audio",
    "synth-single": "avbench.suites.synthetic:build_synth_single",
    "synth-mixed2": "avbench.suites.synthetic:build_synth_mixed2",
    "synth-sep": "avbench.suites.synthetic:build_synth_sep",
    "synth-mixed2-noisy": "avbench.suites.synthetic:build_synth_mixed2_noisy",
}
