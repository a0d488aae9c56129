import numpy as np

from lightpose import skeleton


def test_tables_have_consistent_sizes():
    assert len(skeleton.KEYPOINT_NAMES) == skeleton.NUM_KEYPOINTS == 18
    assert len(skeleton.LIMBS) == len(skeleton.LIMB_PAF_CHANNELS) == skeleton.NUM_LIMBS == 19
    assert len(skeleton.TRAINING_LIMBS) == 19
    assert len(skeleton.OPENPOSE_COCO.sigmas) == 18 and len(skeleton.COCO_SIGMAS) == 17


def test_paf_channels_cover_every_channel_once():
    channels = [c for pair in skeleton.LIMB_PAF_CHANNELS for c in pair]
    assert sorted(channels) == list(range(skeleton.NUM_PAFS))


def test_decoder_and_training_limb_tables_agree_on_channels():
    # Training limb i is written to channels (2i, 2i+1); the decoder must read the same limb there.
    for limb, (x_channel, y_channel) in zip(skeleton.LIMBS, skeleton.LIMB_PAF_CHANNELS, strict=True):
        assert y_channel == x_channel + 1
        assert skeleton.TRAINING_LIMBS[x_channel // 2] == limb


def test_coco_mapping_round_trips():
    for coco_index, internal in enumerate(skeleton.COCO_TO_INTERNAL):
        assert skeleton.INTERNAL_TO_COCO[internal] == coco_index
    assert skeleton.INTERNAL_TO_COCO[skeleton.NECK] == -1
    assert skeleton.KEYPOINT_NAMES[skeleton.COCO_TO_INTERNAL[5]] == "l_sho"  # COCO 5 = left shoulder


def test_flip_permutation_swaps_left_and_right_names():
    perm = skeleton.flip_permutation()
    assert np.array_equal(perm[perm], np.arange(18))
    for i, j in enumerate(perm):
        a, b = skeleton.KEYPOINT_NAMES[i], skeleton.KEYPOINT_NAMES[j]
        if a[:2] in ("r_", "l_"):
            assert b == ("l_" if a[0] == "r" else "r_") + a[2:]
        else:
            assert a == b
