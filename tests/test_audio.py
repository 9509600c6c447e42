"""Audio loading, mixing and writing, and FileSource's path and error handling."""

import os

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from avbench.errors import DataError
from avbench.items.audio import load_audio, mix_sources, write_wav
from avbench.items.files import FileSource
from avbench.suites.manifest import Frame, Item, Source


def sine(freq, seconds, rate, amplitude=0.5):
    t = np.arange(int(round(seconds * rate))) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_resampling_keeps_a_sine_and_gives_the_exact_length(tmp_path):
    path = tmp_path / "tone.wav"
    sf.write(path, sine(1000, 1.0, 44100), 44100, subtype="FLOAT")
    wave = load_audio(path, 16000, seconds=1.0)
    assert wave.dtype == np.float32 and wave.shape == (16000,)
    expected = sine(1000, 1.0, 16000)
    interior = slice(800, 15200)  # away from the resampler's edge transients
    assert np.max(np.abs(wave[interior] - expected[interior])) < 2e-3


def test_window_is_read_from_start_without_resampling(tmp_path):
    ramp = (np.arange(8000, dtype=np.float32) / 8000) - 0.5
    path = tmp_path / "ramp.wav"
    sf.write(path, ramp, 8000, subtype="FLOAT")
    wave = load_audio(path, 8000, start=0.25, seconds=0.5, expect_rate=8000)
    np.testing.assert_array_equal(wave, ramp[2000:6000])


def test_short_clips_are_tiled_never_padded(tmp_path):
    short = np.linspace(-0.9, 0.9, 300, dtype=np.float32)
    path = tmp_path / "short.wav"
    sf.write(path, short, 1000, subtype="FLOAT")
    wave = load_audio(path, 1000, seconds=1.0)
    assert wave.shape == (1000,)
    np.testing.assert_array_equal(wave[:300], short)
    np.testing.assert_array_equal(wave[300:600], short)
    np.testing.assert_array_equal(wave[900:], short[:100])


def test_channels_are_averaged_and_samples_clipped(tmp_path):
    stereo = np.stack([np.full(100, 0.6), np.full(100, -0.2)], axis=1).astype(np.float32)
    path = tmp_path / "stereo.wav"
    sf.write(path, stereo, 1000, subtype="FLOAT")
    np.testing.assert_allclose(load_audio(path, 1000), np.full(100, 0.2), atol=1e-7)
    loud = tmp_path / "loud.wav"
    sf.write(loud, np.array([1.5, -2.0, 0.5], dtype=np.float32), 1000, subtype="FLOAT")
    np.testing.assert_array_equal(load_audio(loud, 1000), np.array([1.0, -1.0, 0.5], dtype=np.float32))


def test_wrong_rate_is_refused_when_an_exact_rate_is_demanded(tmp_path):
    path = tmp_path / "clip.wav"
    sf.write(path, sine(440, 0.1, 44100), 44100)
    with pytest.raises(DataError, match=r"clip\.wav.*44100 Hz.*expected 16000 Hz"):
        load_audio(path, 16000, expect_rate=16000)


@pytest.mark.parametrize("content", [b"", b"RIFF\x00\x00garbage that is not audio" * 10])
def test_corrupt_file_names_the_file(tmp_path, content):
    path = tmp_path / "broken.wav"
    path.write_bytes(content)
    with pytest.raises(DataError, match="broken.wav"):
        load_audio(path, 16000)


def test_nan_samples_and_reading_past_the_end_are_errors(tmp_path):
    path = tmp_path / "nan.wav"
    sf.write(path, np.array([0.1, np.nan, 0.2], dtype=np.float32), 1000, subtype="FLOAT")
    with pytest.raises(DataError, match="nan.wav.*NaN"):
        load_audio(path, 1000)
    short = tmp_path / "short.wav"
    sf.write(short, np.zeros(100, dtype=np.float32) + 0.1, 1000, subtype="FLOAT")
    with pytest.raises(DataError, match="short.wav.*no audio from 5.0 s"):
        load_audio(short, 1000, start=5.0, seconds=1.0)


def test_equal_rms_mean_in_closed_form():
    quiet = np.full(4, 0.2)  # RMS 0.2
    loud = np.array([0.6, -0.6, 0.6, -0.6])  # RMS 0.6; the common RMS is their mean, 0.4
    mixture, sources = mix_sources([quiet, loud], [0.0, 0.0], "equal-rms-mean")
    np.testing.assert_allclose(sources, [[0.4] * 4, [0.4, -0.4, 0.4, -0.4]], atol=1e-7)
    np.testing.assert_allclose(mixture, [0.4, 0.0, 0.4, 0.0], atol=1e-7)
    assert mixture.dtype == sources.dtype == np.float32


def test_silent_sources_stay_silent_and_do_not_set_the_level():
    silent, loud = np.zeros(6), np.full(6, 0.5)
    mixture, sources = mix_sources([silent, loud], [0.0, 0.0], "equal-rms-mean")
    np.testing.assert_array_equal(sources[0], np.zeros(6))
    np.testing.assert_allclose(sources[1], loud, atol=1e-7)
    np.testing.assert_allclose(mixture, np.full(6, 0.25), atol=1e-7)


def test_mean_and_sum_apply_gains():
    a, b = np.full(3, 0.4), np.full(3, -0.2)
    mixture, sources = mix_sources([a, b], [20 * np.log10(0.5), 0.0], "mean")
    np.testing.assert_allclose(sources, [[0.2] * 3, [-0.2] * 3], atol=1e-7)
    np.testing.assert_allclose(mixture, np.zeros(3), atol=1e-7)
    mixture, _ = mix_sources([a, b], [0.0, 0.0], "sum")
    np.testing.assert_allclose(mixture, np.full(3, 0.2), atol=1e-7)


def test_a_mixture_leaving_unit_range_is_scaled_down_as_a_whole():
    a, b = np.full(5, 0.9), np.full(5, 0.9)
    mixture, sources = mix_sources([a, b], [0.0, 0.0], "sum")
    np.testing.assert_allclose(mixture, np.ones(5), atol=1e-6)
    np.testing.assert_allclose(sources, np.full((2, 5), 0.5), atol=1e-6)
    np.testing.assert_allclose(sources.sum(axis=0), mixture, atol=1e-7)


def test_mixing_is_deterministic_and_the_mixture_is_the_mean_of_the_returned_sources():
    rng = np.random.default_rng(3)
    waves = [rng.uniform(-0.3, 0.3, 1000), rng.uniform(-0.05, 0.05, 1000)]
    first = mix_sources(waves, [0.0, -3.0], "equal-rms-mean")
    second = mix_sources(waves, [0.0, -3.0], "equal-rms-mean")
    assert first[0].tobytes() == second[0].tobytes() and first[1].tobytes() == second[1].tobytes()
    rms = np.sqrt(np.mean(first[1].astype(np.float64) ** 2, axis=1))
    assert rms[0] == pytest.approx(rms[1], rel=1e-6)
    np.testing.assert_allclose(first[0], first[1].mean(axis=0), atol=1e-7)


def test_write_wav_is_float32_and_leaves_no_temporary_file(tmp_path):
    audio = sine(300, 0.2, 16000)
    target = tmp_path / "out" / "a.wav"
    write_wav(target, audio, 16000)
    write_wav(target, audio * 0.5, 16000)  # overwriting works too
    info = sf.info(target)
    assert (info.samplerate, info.subtype, info.format) == (16000, "FLOAT", "WAV")
    np.testing.assert_array_equal(load_audio(target, 16000, expect_rate=16000), audio * 0.5)
    assert os.listdir(target.parent) == ["a.wav"]


# ---- FileSource ------------------------------------------------------------------------


def make_root(tmp_path):
    root = tmp_path / "root"
    (root / "audio").mkdir(parents=True)
    (root / "frames").mkdir()
    sf.write(root / "audio" / "c1.wav", sine(200, 1.0, 8000), 8000, subtype="FLOAT")
    Image.new("RGB", (8, 6), (10, 200, 30)).save(root / "frames" / "c1.png")
    return root


def test_file_source_reads_audio_and_frames(tmp_path):
    files = FileSource(make_root(tmp_path))
    source = Source(clip="c1", label="x", path="audio/c1.wav", start=0.5)
    wave = files.source_audio(source, 8000, 1.0)
    np.testing.assert_array_equal(wave[:4000], sine(200, 1.0, 8000)[4000:])  # from 0.5 s, then tiled
    image = files.frame(Frame("frames/c1.png", "middle"))
    assert image.dtype == np.uint8 and image.shape == (6, 8, 3) and tuple(image[0, 0]) == (10, 200, 30)


def test_file_source_refuses_wrong_rate_missing_and_corrupt_files(tmp_path):
    root = make_root(tmp_path)
    files = FileSource(root)
    with pytest.raises(DataError, match="c1.wav.*8000 Hz.*expected 16000 Hz"):
        files.source_audio(Source(clip="c1", label=None, path="audio/c1.wav"), 16000, 1.0)
    assert FileSource(root, strict_rate=False).source_audio(Source("c1", None, "audio/c1.wav"), 16000, 1.0).shape == (
        16000,
    )
    with pytest.raises(DataError, match="clip c2.*c2.wav is missing.*--data-root"):
        files.source_audio(Source(clip="c2", label=None, path="audio/c2.wav"), 8000, 1.0)
    (root / "frames" / "bad.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DataError, match="bad.jpg.*cannot decode"):
        files.frame(Frame("frames/bad.jpg", "middle"))
    with pytest.raises(DataError, match="nothere.jpg is missing"):
        files.frame(Frame("frames/nothere.jpg", "middle"))


def test_file_source_lists_missing_paths(tmp_path):
    files = FileSource(make_root(tmp_path))
    item = Item(
        id="i",
        seed=0,
        labels=("x",),
        sources=(
            Source("c1", "x", "audio/c1.wav", frame=Frame("frames/c1.png", "middle")),
            Source("c2", None, "audio/c2.wav"),
        ),
        frame=Frame("frames/scene.jpg", "middle"),
    )
    assert files.missing(item) == ["audio/c2.wav", "frames/scene.jpg"]


def test_symlinks_and_dotdot_leaving_the_root_are_refused(tmp_path):
    root = make_root(tmp_path)
    outside = tmp_path / "secret.wav"
    sf.write(outside, sine(100, 0.1, 8000), 8000)
    (root / "audio" / "link.wav").symlink_to(outside)
    files = FileSource(root)
    with pytest.raises(DataError, match="outside the data root"):
        files.source_audio(Source("link", None, "audio/link.wav"), 8000, 0.1)
    with pytest.raises(DataError, match="outside the data root"):
        files.source_audio(Source("up", None, "../secret.wav"), 8000, 0.1)
    with pytest.raises(DataError, match="outside the data root"):
        files.frame(Frame("../secret.wav", "middle"))


def test_a_missing_data_root_says_how_to_make_one(tmp_path):
    with pytest.raises(DataError, match=r"does not exist.*--data-root.*avbench data prepare"):
        FileSource(tmp_path / "nowhere")
