"""Step 7: each unit's receptive-field geometry from its dense-noise STA (no raw data needed)."""

from __future__ import annotations

import h5py

from nmbatch.mea.receptive_field import PARAMS, ReceptiveField, analyse_sta, no_fits
from nmbatch.mea.rf_fit import Fit
from nmbatch.mea.steps.registry import StepInput, step


def _noise_sta(unit: h5py.Group) -> h5py.Dataset | None:
    """The unit's dense-noise STA with the most spikes (one per noise movie), or None."""
    stas = [unit[k] for k in unit if k.startswith("sta_") and isinstance(unit[k], h5py.Dataset)]
    return max(stas, key=lambda d: int(d.attrs.get("n_spikes", 0)), default=None)


def _write_fit(group: h5py.Group, fit: Fit) -> None:
    group.attrs.update(fit.values)
    group.attrs.update(r_squared=fit.r_squared, reason=fit.reason)


def _write(unit: h5py.Group, rf: ReceptiveField, movie: str, n_spikes: int) -> None:
    group = unit.create_group("rf_geometry")
    group.attrs.update(
        status=rf.status,
        reason=rf.reason,
        movie=movie,
        n_spikes=n_spikes,
        polarity=rf.polarity,
        peak_frame=rf.peak_frame,
        peak_z=rf.peak_z,
    )
    _write_fit(group, rf.fits["gaussian"])
    for kind in ("dog", "on", "off"):
        _write_fit(group.create_group(kind), rf.fits[kind])
    if rf.spatial_map is not None:
        group.create_dataset("spatial_map", data=rf.spatial_map)
        group.create_dataset("temporal_profile", data=rf.temporal_profile)


@step(7, needs_raw=False, requires=(4,), params=PARAMS, outputs=("units/*/rf_geometry",))
def rf_geometry_step(inp: StepInput) -> None:
    """Write ``units/<unit>/rf_geometry`` for every unit (see the README for the layout).

    Attributes: ``status`` (fitted, too_noisy, fit_failed, no_sta), ``reason`` (why there
    is no fit, '' if there is), ``movie``, ``n_spikes``, ``polarity`` (ON/OFF),
    ``peak_frame``, ``peak_z``; the Gaussian's ``center_x``, ``center_y`` (noise pixels,
    x = column, y = row), ``sigma_x >= sigma_y`` (pixels), ``angle`` (radians, sigma_x's
    axis from +x towards +y, in [0, pi)), ``amplitude``, ``offset``, ``r_squared``: NaN
    where there is no fit. Subgroups ``dog``, ``on``, ``off``: the other fits, each with
    its own ``r_squared`` and ``reason``. Datasets ``spatial_map`` (the peak frame, the
    field positive) and ``temporal_profile`` (at the peak pixel) where there is an STA.
    """
    units = inp.out["units"]
    stas = {name: _noise_sta(unit) for name, unit in units.items()}
    if not any(stas.values()):
        why = "no dense-noise STA in this recording (step 4 found no noise movie or no spikes)"
    else:
        why = "no dense-noise STA for this unit (no spikes during the noise movie)"
    unfitted = []
    for name, unit in units.items():
        sta = stas[name]
        if sta is None:
            _write(unit, ReceptiveField("no_sta", why, fits=no_fits(why)), "", 0)
            continue
        rf = analyse_sta(sta[()], inp.params)
        _write(unit, rf, sta.name.rsplit("/sta_", 1)[-1], int(sta.attrs.get("n_spikes", 0)))
        if rf.reason:
            unfitted.append(f"{name} ({rf.reason})")
    if unfitted:
        inp.warn(f"{len(unfitted)} unit(s) with an STA but no RF fit: {'; '.join(unfitted)}")
