"""Synthetic 43-file exports for a whole province (default Sa Kaeo, 27): realistic people, visits and
registries, optional injected defects with an exact manifest. See :func:`generate` and :func:`write_zips`."""

from phrsync.synth.export import write_zips
from phrsync.synth.generator import Batch, SynthOptions, generate

__all__ = ["Batch", "SynthOptions", "generate", "write_zips"]
