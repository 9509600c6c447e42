"""Building blocks shared by the baselines (stable; other baselines import them read-only).

spectrogram    Sound2Scene's log-spectrogram front-end (LogSpectrogram, SpectrogramConfig)
audio_resnet   ResNet-18-style audio encoder with the official parameter names (AudioResNet)
biggan         IC-GAN-style BigGAN generator conditioned on an instance feature (BigGANGenerator)
icgan          locating an official IC-GAN generator directory and its stored config
image_encoder  the synthetic world's small image encoder (stand-in for SwAV)
image_stage    training the synthetic image encoder and generator
world_data     rendering training clips, mixtures and scenes from the synthetic world
synth_scale    the small configurations used on the synthetic world
losses         InfoNCE (Sound2Scene's L2 form), per-row InfoNCE, permutation-invariant minimum
generation     per-item seeded noise and uint8 conversion of generator output
checkpoint_io  avbench-format safetensors (metadata = model + config), safe training-state reads
training       seeding, batching, Adam + one-cycle, logging for the training scripts
"""
