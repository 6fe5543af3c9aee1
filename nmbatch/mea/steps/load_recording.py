"""Step 1: the sorted units with their spike times, and each unit's electrical image."""

from __future__ import annotations

import logging

from nmbatch.mea.eimage import electrical_images
from nmbatch.mea.filtering import highpass_sos
from nmbatch.mea.output import unit_name
from nmbatch.mea.steps.registry import StepInput, step

log = logging.getLogger(__name__)


@step(
    1,
    needs_raw=True,
    params=(
        "eimage_highpass_hz",
        "eimage_filter_order",
        "eimage_samples_before",
        "eimage_samples_after",
        "eimage_max_spikes",
        "eimage_max_seconds",
    ),
    outputs=("units", "metadata/recording"),
)
def load_recording(inp: StepInput) -> None:
    """Write ``units/<unit>/spike_times`` and ``eimage_sta``, and ``metadata/recording``.

    A unit without included spikes is kept (``n_spikes = 0``) with no eimage_sta;
    so is a unit none of whose spikes has a full window in the first
    ``eimage_max_seconds`` of sensor data (``eimage_n_spikes = 0``). The recording's
    length is its analog stream's; ``sensor_samples`` says how much of it the
    sensor stream covers (all of it in a real recording).
    """
    raw, p = inp.raw, inp.params
    fs = raw.sampling_rate
    units = raw.units()
    before, after = int(p["eimage_samples_before"]), int(p["eimage_samples_after"])
    n_used = min(raw.n_sensor_samples, round(p["eimage_max_seconds"] * fs))
    if raw.n_sensor_samples < raw.n_samples:
        log.info(
            "%s: sensor data covers %.1f s of the %.1f s recording; electrical images use "
            "the spikes in it",
            inp.recording,
            raw.n_sensor_samples / fs,
            raw.n_samples / fs,
        )
    sos = highpass_sos(p["eimage_highpass_hz"], int(p["eimage_filter_order"]), fs)
    images, counts = electrical_images(
        raw.read_sensor,
        n_used,
        [u.spikes for u in units],
        sos,
        before,
        after,
        int(p["eimage_max_spikes"]),
    )
    info = inp.out.require_group("metadata").create_group("recording")
    info.attrs.update(
        recording=inp.recording,
        cmcr_path=str(raw.cmcr_path),
        cmtr_path=str(raw.cmtr_path),
        sampling_rate_hz=fs,
        n_samples=raw.n_samples,
        duration_s=raw.n_samples / fs,
        sensor_samples=raw.n_sensor_samples,
        eimage_samples_used=n_used,
    )
    rows, cols = raw.sensor_shape
    group = inp.out.create_group("units")
    for unit, image, count in zip(units, images, counts, strict=True):
        g = group.create_group(unit_name(unit.unit_id))
        g.attrs.update(unit.measures)
        g.attrs.update(
            unit_id=unit.unit_id,
            sensor_id=unit.sensor_id,
            row=unit.row,
            col=unit.col,
            n_spikes=unit.spikes.size,
            eimage_n_spikes=int(count),
        )
        times = g.create_dataset("spike_times", data=unit.spikes)
        times.attrs.update(unit="samples", sampling_rate_hz=fs)
        if count:
            eimage = g.create_dataset("eimage_sta", data=image.reshape(-1, rows, cols))
            eimage.attrs.update(n_spikes=int(count), first_sample=-before, unit="ADC counts")
        if unit.spikes.size == 0:
            log.warning("%s: unit %d has no included spikes", inp.recording, unit.unit_id)
