"""A tiny generated SMPL-X model file with the keys and shapes ``smplx.create`` reads.

The licensed SMPL-X model cannot ship, so tests build a stand-in: random template vertices,
a sparse joint regressor (each joint averages 4 vertices), one-hot skinning weights, the real
55-joint kinematic tree, random shape directions and zero pose correctives. It is not a body,
but it runs the real ``smplx`` code path end to end.

Why ~10k vertices rather than a few hundred: ``smplx.SMPLX`` always appends extra "joints"
picked from fixed SMPL-X vertex ids (nose 9120 ... right eye 9929), so the model needs at least
``max(id) + 1`` vertices. The big arrays are mostly zeros and compress to a small file.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from duet_env import skeleton

NUM_SHAPE_DIRS = 20  # 10 shape + 10 expression, as in the SMPL-X v1.0 npz files
NUM_POSE_BASIS = (skeleton.NUM_JOINTS - 1) * 9  # 486


def min_vertices() -> int:
    from smplx.vertex_ids import vertex_ids

    return max(vertex_ids["smplx"].values()) + 1


def write_tiny_smplx_model(folder: str | Path, seed: int = 0, gender: str = "neutral") -> Path:
    """Write ``folder/smplx/SMPLX_<GENDER>.npz`` and return ``folder`` (the ``model_path``)."""
    rng = np.random.default_rng(seed)
    n_joints = skeleton.NUM_JOINTS
    n_verts = min_vertices()

    # Template vertices scattered around the built-in rest skeleton, so regressed joints look sane.
    rest = skeleton.rest_joints()
    owner = np.arange(n_verts) % n_joints
    v_template = rest[owner] + rng.normal(scale=0.01, size=(n_verts, 3))

    j_regressor = np.zeros((n_joints, n_verts))
    for j in range(n_joints):
        picks = rng.choice(np.flatnonzero(owner == j), size=4, replace=False)
        j_regressor[j, picks] = 0.25

    weights = np.zeros((n_verts, n_joints))
    weights[np.arange(n_verts), owner] = 1.0

    shapedirs = np.zeros((n_verts, 3, NUM_SHAPE_DIRS))
    shapedirs[:, :, :10] = rng.normal(scale=0.01, size=(n_verts, 3, 10))

    kintree = np.stack([np.array(skeleton.PARENTS), np.arange(n_joints)]).astype(np.int64)
    faces = np.stack([np.arange(0, n_verts - 2), np.arange(1, n_verts - 1), np.arange(2, n_verts)], axis=1)

    n_lmk, n_dyn = 51, 79
    data = {
        "v_template": v_template.astype(np.float32),
        "shapedirs": shapedirs.astype(np.float32),
        "posedirs": np.zeros((n_verts, 3, NUM_POSE_BASIS), np.float32),
        "J_regressor": j_regressor.astype(np.float32),
        "weights": weights.astype(np.float32),
        "kintree_table": kintree,
        "f": faces.astype(np.int64),
        "hands_componentsl": np.eye(45, dtype=np.float32),
        "hands_componentsr": np.eye(45, dtype=np.float32),
        "hands_meanl": np.zeros(45, np.float32),
        "hands_meanr": np.zeros(45, np.float32),
        "lmk_faces_idx": rng.integers(0, len(faces), n_lmk).astype(np.int64),
        "lmk_bary_coords": np.full((n_lmk, 3), 1.0 / 3.0, np.float32),
        "dynamic_lmk_faces_idx": rng.integers(0, len(faces), (n_dyn, 17)).astype(np.int64),
        "dynamic_lmk_bary_coords": np.full((n_dyn, 17, 3), 1.0 / 3.0, np.float32),
    }
    out = Path(folder) / "smplx"
    out.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out / f"SMPLX_{gender.upper()}.npz", **data)
    return Path(folder)


def load_tiny_model(folder: str | Path, gender: str = "neutral") -> dict[str, np.ndarray]:
    with np.load(Path(folder) / "smplx" / f"SMPLX_{gender.upper()}.npz") as npz:
        return {k: npz[k] for k in npz.files}
