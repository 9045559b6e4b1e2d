"""SMPL-X mesh rendering of a duet, for users who have the (licensed) SMPL-X model files.

Same view as the stick figures of :mod:`duet_env.render` (its camera, floor grid, colours and
labels); the bodies are the SMPL-X surfaces of each dancer's ``poses`` / ``transl`` / ``betas``
(``smplx`` through :class:`duet_env.skeleton.SmplxBody`), drawn without an OpenGL context: the
vertices and the face centres are projected and splatted as 2×2-pixel points, shaded by their
normals (a light from the camera) and resolved by depth per pixel (a z-buffer). That is a
preview, not a rasterizer: at 480×480 the SMPL-X vertex spacing (about 1–2 cm, 1.5–3 px) leaves
no holes. Vertices are computed in chunks, so memory does not grow with the song's length.

The mesh is SMPL-X's body for the rotations the exports hold; the joints, BVH and metrics use the
built-in skeleton (:mod:`duet_env.skeleton`), so the two can differ by the bodies' proportions.
"""
from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np
import torch
from PIL import Image, ImageDraw

from .render import (BACKGROUND, FOLLOWER_COLOUR, LEADER_COLOUR, TEXT_COLOUR, Camera, _draw_grid, _draw_labels,
                     _font, sequence_camera)
from .skeleton import JOINT_INDEX, SmplxBody

CHUNK = 64          # frames per SMPL-X forward pass
SPLAT = 2           # pixels per side of a splatted point
AMBIENT = 0.35      # shading: ambient + (1 − ambient) · cos(normal, direction to the camera)
HEAD = JOINT_INDEX["head"]


def _body(model_path: str | os.PathLike, gender: str) -> SmplxBody:
    try:
        return SmplxBody(str(model_path), gender=gender)
    except (AssertionError, FileNotFoundError, OSError):
        if gender == "neutral":
            raise
        return SmplxBody(str(model_path), gender="neutral")


class MeshDancer:
    """One dancer's SMPL-X surface, evaluated chunk by chunk."""

    def __init__(self, model_path, motion: dict):
        self.body = _body(model_path, str(motion.get("gender", "neutral")))
        self.poses = torch.as_tensor(np.asarray(motion["poses"], np.float32))
        self.transl = torch.as_tensor(np.asarray(motion["transl"], np.float32))
        self.betas = np.asarray(motion.get("betas", np.zeros(10)), np.float32)
        self.faces = self.body.faces
        n_vert = int(self.faces.max()) + 1
        # vertex normal = sum of the normals of its faces: one sparse (V × F) product per frame
        from scipy.sparse import csr_matrix

        rows = self.faces.reshape(-1)
        cols = np.repeat(np.arange(len(self.faces)), 3)
        self.incidence = csr_matrix((np.ones(rows.size, np.float32), (rows, cols)), shape=(n_vert, len(self.faces)))

    def __len__(self) -> int:
        return len(self.poses)

    def vertices(self, start: int, stop: int) -> np.ndarray:
        with torch.no_grad():
            return self.body.vertices(self.poses[start:stop], self.transl[start:stop], self.betas).numpy()

    def points(self, verts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Surface points (vertices + face centres) and their unit normals of one frame."""
        tri = verts[self.faces]
        face_n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
        vert_n = self.incidence @ face_n
        pts = np.concatenate([verts, tri.mean(1)])
        nrm = np.concatenate([vert_n, face_n])
        nrm /= np.maximum(np.linalg.norm(nrm, axis=1, keepdims=True), 1e-12)
        return pts, nrm


def splat(image: np.ndarray, camera: Camera, surfaces: list[tuple[np.ndarray, np.ndarray, tuple]]) -> None:
    """Draw shaded point sets ``(points, normals, colour)`` into ``image`` (H, W, 3), nearest wins."""
    h, w = image.shape[:2]
    flat_all, depth_all, colour_all = [], [], []
    offsets = np.array([(dy, dx) for dy in range(SPLAT) for dx in range(SPLAT)])
    for pts, nrm, colour in surfaces:
        to_cam = camera.position - pts
        to_cam /= np.maximum(np.linalg.norm(to_cam, axis=1, keepdims=True), 1e-12)
        facing = np.sum(nrm * to_cam, axis=1)
        keep = facing > 0  # back faces are hidden anyway
        pix, depth = camera.project(pts[keep])
        shade = AMBIENT + (1.0 - AMBIENT) * facing[keep]
        rgb = (np.asarray(colour, np.float32)[None] * shade[:, None]).astype(np.uint8)
        yx = np.floor(pix[:, ::-1]).astype(np.int64)[:, None, :] + offsets[None]
        inside = (yx[..., 0] >= 0) & (yx[..., 0] < h) & (yx[..., 1] >= 0) & (yx[..., 1] < w)
        flat_all.append((yx[..., 0] * w + yx[..., 1])[inside])
        depth_all.append(np.repeat(depth[:, None], len(offsets), 1)[inside])
        colour_all.append(np.repeat(rgb[:, None], len(offsets), 1)[inside])
    flat = np.concatenate(flat_all)
    if flat.size == 0:
        return
    depth = np.concatenate(depth_all)
    colours = np.concatenate(colour_all)
    zbuf = np.full(h * w, np.inf)
    np.minimum.at(zbuf, flat, depth)  # the z-buffer: nearest depth per pixel, no sort
    win = depth <= zbuf[flat]
    image.reshape(-1, 3)[flat[win]] = colours[win]


def sole_margin(dancer: MeshDancer) -> float:
    """How far the rest mesh reaches below its lowest joint (the soles below the ankles/toes)."""
    with torch.no_grad():
        out, _ = dancer.body._forward(torch.zeros(1, 165), torch.zeros(1, 3), dancer.betas)
    verts, joints = out.vertices[0].numpy(), out.joints[0, :55].numpy()
    return float(max(joints[:, 1].min() - verts[:, 1].min(), 0.0))


def iter_mesh_frames(model_path, leader: dict, follower: dict, leader_joints: np.ndarray,
                     follower_joints: np.ndarray, *, width: int = 480, height: int = 480, labels: bool = True,
                     title: str | None = None, progress: bool = False) -> Iterator[np.ndarray]:
    """Frames ``(height, width, 3)`` uint8 of both dancers' SMPL-X meshes.

    ``leader`` / ``follower``: SMPL-X dicts (``poses`` (T, 165), ``transl`` (T, 3), ``betas``,
    ``gender``); ``*_joints`` (T, 55, 3): the joints that place the camera and the labels
    (the view of :func:`duet_env.render.iter_frames`).
    """
    from tqdm.auto import tqdm

    dancers = [MeshDancer(model_path, leader), MeshDancer(model_path, follower)]
    if len(dancers[0]) != len(dancers[1]) or len(dancers[0]) != len(leader_joints):
        raise ValueError(f"leader ({len(dancers[0])}), follower ({len(dancers[1])}) and joints "
                         f"({len(leader_joints)}) must have the same number of frames")
    targets, floor = sequence_camera(leader_joints, follower_joints)
    floor -= max(sole_margin(d) for d in dancers)
    scale = height / 480.0
    colours = (LEADER_COLOUR, FOLLOWER_COLOUR)
    bar = tqdm(total=len(targets), desc="rendering meshes", unit="frame", disable=not progress, leave=False)
    for start in range(0, len(targets), CHUNK):
        stop = min(start + CHUNK, len(targets))
        verts = [d.vertices(start, stop) for d in dancers]
        for k in range(stop - start):
            t = start + k
            camera = Camera(targets[t], width, height)
            image = Image.new("RGB", (width, height), BACKGROUND)
            _draw_grid(ImageDraw.Draw(image), camera, targets[t], floor, scale)
            arr = np.array(image)
            splat(arr, camera, [(*d.points(v[k]), c) for d, v, c in zip(dancers, verts, colours)])
            image = Image.fromarray(arr)
            draw = ImageDraw.Draw(image)
            if labels:
                anchors = []
                for joints in (leader_joints[t], follower_joints[t]):
                    pix, depth = camera.project(joints[HEAD])
                    anchors.append((float(pix[0]), float(pix[1] - camera.focal * 0.15 / depth)))
                _draw_labels(draw, anchors, ["leader", "follower"], list(colours), scale)
            if title:
                draw.text((8 * scale, 6 * scale), title, fill=TEXT_COLOUR, font=_font(max(10, round(15 * scale))))
            bar.update(1)
            yield np.asarray(image)
    bar.close()
