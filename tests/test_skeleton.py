"""Skeleton and motion maths: known answers."""
import numpy as np
import pytest
import torch

from duet_env import conventions, motion, skeleton


def test_tree_and_parts_are_consistent():
    assert len(skeleton.PARENTS) == len(skeleton.JOINT_NAMES) == skeleton.NUM_JOINTS == 55
    assert all(p < j for j, p in enumerate(skeleton.PARENTS))  # parents come first
    joints = sorted(j for part in conventions.PART_JOINTS.values() for j in part)
    assert joints == list(range(55))  # every joint in exactly one part
    assert [len(conventions.PART_JOINTS[p]) for p in ("lower", "upper", "lhand", "rhand")] == [9, 16, 15, 15]
    mirror = skeleton.MIRROR_INDEX
    assert all(mirror[mirror[j]] == j for j in range(55))
    assert skeleton.JOINT_NAMES[mirror[skeleton.JOINT_INDEX["left_wrist"]]] == "right_wrist"


def test_rest_skeleton_is_an_adult_of_about_170cm():
    rest = skeleton.rest_joints()
    height = rest[:, 1].max() - rest[:, 1].min() + 0.10  # head joint to crown
    assert 1.6 < height < 1.8
    # left side on +x, facing +z
    assert rest[skeleton.JOINT_INDEX["left_shoulder"], 0] > 0 > rest[skeleton.JOINT_INDEX["right_shoulder"], 0]
    assert np.allclose(motion.heading_from_joints(rest), [0, 0, 1], atol=1e-9)


def test_zero_pose_fk_is_rest_plus_translation():
    t = np.array([[0.5, 1.2, -0.3]])
    joints = skeleton.forward_kinematics(np.zeros((1, 165)), t)
    assert np.allclose(joints[0], skeleton.rest_joints() + t, atol=1e-6)


def test_fk_keeps_bone_lengths_and_root_yaw_turns_heading():
    rng = np.random.default_rng(0)
    poses = rng.normal(0, 0.4, (8, 165))
    joints = skeleton.forward_kinematics(poses, rng.normal(0, 1, (8, 3)))
    lengths = np.linalg.norm(joints[:, 1:] - joints[:, list(skeleton.PARENTS[1:])], axis=-1)
    assert np.allclose(lengths, skeleton.bone_lengths()[1:], atol=1e-5)
    yaw = np.zeros((1, 165))
    yaw[0, 1] = np.pi / 2  # +90° about y: facing +z -> +x
    fwd = motion.heading_from_joints(skeleton.forward_kinematics(yaw, np.zeros((1, 3))))
    assert np.allclose(fwd, [[1, 0, 0]], atol=1e-6)
    assert np.isclose(motion.heading_angle(fwd)[0], np.pi / 2)


def test_fk_accepts_rotmats_and_is_differentiable_in_torch():
    rng = np.random.default_rng(1)
    aa = rng.normal(0, 0.3, (3, 165))
    rot = motion.axis_angle_to_matrix(aa.reshape(3, 55, 3))
    j1 = skeleton.forward_kinematics(aa, np.zeros((3, 3)))
    j2 = skeleton.forward_kinematics(rot, np.zeros((3, 3)))
    assert np.allclose(j1, j2, atol=1e-5)
    p = torch.tensor(aa, requires_grad=True)
    out = skeleton.forward_kinematics(p, torch.zeros(3, 3, dtype=p.dtype))
    out[..., 20, 1].sum().backward()
    assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0


@pytest.mark.parametrize("frames", [5, skeleton.FRAMES_LAST_MIN, 300])
def test_joint_positions_equal_global_transforms_and_their_gradient(frames):
    """The decoder's FK (frames-last from FRAMES_LAST_MIN frames on) is global_transforms' positions."""
    rng = np.random.default_rng(frames)
    rot = motion.axis_angle_to_matrix(torch.tensor(rng.normal(0, 0.6, (frames, 55, 3)))).reshape(1, frames, 55, 3, 3)
    transl = torch.tensor(rng.normal(0, 2.0, (1, frames, 3)))
    rot.requires_grad_(True)
    fast = skeleton.joint_positions(rot, transl)
    (grad_fast,) = torch.autograd.grad(fast[..., 20:, :].sum(), rot)
    _, reference = skeleton.global_transforms(rot, transl)
    (grad_ref,) = torch.autograd.grad(reference[..., 20:, :].sum(), rot)
    assert fast.shape == (1, frames, 55, 3)
    torch.testing.assert_close(fast, reference, atol=1e-12, rtol=0)
    torch.testing.assert_close(grad_fast, grad_ref, atol=1e-12, rtol=0)
    # float32, as the decoder runs it
    torch.testing.assert_close(skeleton.joint_positions(rot.detach().float(), transl.float()),
                               reference.detach().float(), atol=1e-5, rtol=0)


def test_fk_rejects_wrong_shapes():
    with pytest.raises(ValueError, match="poses"):
        skeleton.forward_kinematics(np.zeros((2, 160)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="transl"):
        skeleton.forward_kinematics(np.zeros((2, 165)), np.zeros((3, 3)))


def test_rotation_round_trips_including_near_pi_and_zero():
    rng = np.random.default_rng(2)
    axes = rng.normal(size=(64, 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    angles = np.concatenate([rng.uniform(0, np.pi, 60), [0.0, 1e-9, np.pi - 1e-6, np.pi - 1e-3]])
    aa = axes * angles[:, None]
    rot = motion.axis_angle_to_matrix(aa)
    assert np.allclose(rot @ np.swapaxes(rot, -1, -2), np.eye(3), atol=1e-9)
    back = motion.axis_angle_to_matrix(motion.matrix_to_axis_angle(rot))
    assert np.allclose(back, rot, atol=1e-6)
    # a known rotation: 90° about z maps x to y
    r = motion.axis_angle_to_matrix(np.array([0, 0, np.pi / 2]))
    assert np.allclose(r @ [1, 0, 0], [0, 1, 0], atol=1e-12)


def test_project_to_so3_recovers_a_rotation_from_noise():
    rng = np.random.default_rng(3)
    rot = motion.axis_angle_to_matrix(rng.normal(size=(10, 3)))
    noisy = rot + rng.normal(0, 0.02, rot.shape)
    proj = motion.project_to_so3(noisy)
    assert np.allclose(np.linalg.det(proj), 1.0, atol=1e-9)
    assert np.abs(proj - rot).max() < 0.05
    assert np.allclose(motion.project_to_so3(rot), rot, atol=1e-9)


def test_heading_frame_round_trip_and_relative_translation():
    fwd = np.array([[1.0, 0, 0]])  # leader faces +x
    v = np.array([[2.0, 0.5, 0.0]])  # 2 m in front of the leader
    local = motion.to_heading_frame(v, fwd)
    assert np.allclose(local, [[0, 0.5, 2.0]], atol=1e-9)  # "in front" is +z in the heading frame
    assert np.allclose(motion.from_heading_frame(local, fwd), v, atol=1e-9)
    rel = motion.relative_translation(np.array([[3.0, 1, 1]]), np.array([[1.0, 1, 1]]), fwd)
    assert np.allclose(rel, [[0, 0, 2]], atol=1e-9)


def test_velocities_of_constant_motion():
    t = np.arange(10)[:, None] * np.array([[0.1, 0.0, 0.0]])  # 0.1 m per frame
    v = motion.velocities(t)
    assert v.shape == t.shape and np.allclose(v[:, 0], 0.1 * motion.FPS)
    with pytest.raises(ValueError):
        motion.velocities(t[:1])


def test_rotation_about_y_keeps_the_angle_shape():
    assert motion.rotation_about_y(0.5).shape == (3, 3)
    assert motion.rotation_about_y(np.zeros(4)).shape == (4, 3, 3)
    assert np.allclose(motion.rotation_about_y(np.pi / 2) @ [0, 0, 1], [1, 0, 0], atol=1e-12)
