"""The SMPL-X path of forward kinematics, through smplx.create, on a tiny generated model."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from duet_env import motion, skeleton

from smplx_fixture import load_tiny_model, write_tiny_smplx_model

T = 6


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    return write_tiny_smplx_model(tmp_path_factory.mktemp("smplx_model"))


@pytest.fixture(scope="module")
def model(model_path):
    return load_tiny_model(model_path)


@pytest.fixture(scope="module")
def body(model_path):
    return skeleton.SmplxBody(str(model_path))


def test_zero_pose_joints_are_the_regressed_template_plus_transl(model_path, model):
    transl = np.random.default_rng(0).normal(size=(T, 3)).astype(np.float32)
    joints = skeleton.forward_kinematics(np.zeros((T, skeleton.POSE_DIM), np.float32), transl,
                                         model_path=str(model_path))
    assert isinstance(joints, np.ndarray) and joints.shape == (T, 55, 3)
    expected = model["J_regressor"] @ model["v_template"]  # (55, 3)
    np.testing.assert_allclose(joints, expected[None] + transl[:, None], atol=1e-5)


def test_posed_joints_match_the_builtin_kinematics_with_the_models_bones(model_path, model):
    # SMPL-X and the built-in FK use the same recursion; fed the model's rest joints as bone
    # offsets, the built-in FK must reproduce smplx's joints for any pose.
    rng = np.random.default_rng(1)
    poses = rng.normal(scale=0.4, size=(T, skeleton.POSE_DIM)).astype(np.float32)
    transl = rng.normal(size=(T, 3)).astype(np.float32)
    joints = skeleton.forward_kinematics(poses, transl, model_path=str(model_path))

    rest = (model["J_regressor"] @ model["v_template"]).astype(np.float64)
    offsets = rest.copy()
    offsets[1:] = rest[1:] - rest[list(skeleton.PARENTS[1:])]
    rot = motion.axis_angle_to_matrix(torch.as_tensor(poses, dtype=torch.float64).reshape(T, 55, 3))
    _, expected = skeleton.global_transforms(rot, torch.as_tensor(transl, dtype=torch.float64), offsets)
    np.testing.assert_allclose(joints, expected.numpy(), atol=1e-4)
    # the pose really moved the body (the test is not passing on a trivial zero pose)
    assert np.abs(joints - (rest[None] + transl[:, None])).max() > 0.05


def test_betas_move_joints_by_the_regressed_shape_directions(body, model):
    betas = np.linspace(-1.0, 1.0, 10).astype(np.float32)
    zeros = torch.zeros(1, skeleton.POSE_DIM)
    transl = torch.zeros(1, 3)
    moved = body.joints(zeros, transl, betas).numpy()[0]
    base = body.joints(zeros, transl).numpy()[0]
    expected_shift = model["J_regressor"] @ (model["shapedirs"][:, :, :10] @ betas)
    np.testing.assert_allclose(moved - base, expected_shift, atol=1e-5)
    assert np.abs(expected_shift).max() > 1e-3


def test_vertices_and_faces(body, model):
    verts = body.vertices(torch.zeros(2, 3, skeleton.POSE_DIM), torch.zeros(2, 3, 3))
    assert tuple(verts.shape) == (2, 3, model["v_template"].shape[0], 3)
    np.testing.assert_allclose(verts[0, 0].numpy(), model["v_template"], atol=1e-5)
    assert body.faces.shape == model["f"].shape


def test_torch_input_gives_torch_output(model_path):
    poses = torch.zeros(2, skeleton.POSE_DIM)
    joints = skeleton.forward_kinematics(poses, torch.zeros(2, 3), model_path=str(model_path))
    assert isinstance(joints, torch.Tensor) and tuple(joints.shape) == (2, 55, 3)
