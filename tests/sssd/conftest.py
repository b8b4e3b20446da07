"""SSSD-ECG / lead-consistency fixtures: real PTB-XL records (../shared/data/ptbxl500), tiny model settings."""

from __future__ import annotations

import itertools

import pytest

from augframe.protocols import Record

TINY = dict(num_layers=2, res_channels=16, skip_channels=16, s4_state=8, label_embed_dim=16,
            diffusion_steps=20, samples=1000, fs=100.0, device="cpu", generate_batch_size=8)


@pytest.fixture(scope="session")
def tiny() -> dict:
    """Tiny SSSD-ECG settings (2 layers, 16 channels, state 8, 20 diffusion steps) at the real 100 Hz x 1000."""
    return dict(TINY)


@pytest.fixture(scope="session")
def ptbxl_records(ptbxl_dir) -> list[Record]:
    """The first 64 PTB-XL records at 100 Hz, read by the data layer's PTB-XL source."""
    from augframe.data import PTBXLSource

    return list(itertools.islice(PTBXLSource(ptbxl_dir, resolution=100).records(), 64))


@pytest.fixture(scope="session")
def ptbxl_batch(ptbxl_records):
    from augframe_sssd.ptbxl import records_to_batch

    batch, _ = records_to_batch(ptbxl_records, labels="statements")
    return batch


@pytest.fixture(scope="session")
def tiny_generator(ptbxl_batch):
    """A tiny SSSD-ECG fitted for 4 steps on real PTB-XL records (shared by several tests)."""
    from augframe_sssd.generator import SSSDECGGenerator

    gen = SSSDECGGenerator(**TINY, iterations=4, batch_size=4)
    gen.fit(ptbxl_batch, seed=0)
    return gen
