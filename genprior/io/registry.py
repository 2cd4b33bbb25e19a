"""The model zoo's contents, as data: one ``dict`` of `genprior.io.zoo.ModelEntry` fields per named model file.

`genprior.io.zoo` registers every entry of `MODELS` on import (and checks it). To add a model, add its fields here:
name, filename, urls (mirrors, tried in order), sha256 (None: trusted on first download, hash printed), license,
description, format, kind, and optionally config, size_bytes, packaged (ships in ``genprior/models``) and search
(paths under the shared folder used in place).
"""

from __future__ import annotations

from typing import Any

__all__ = ["MODELS"]

_BRGM_LICENSE = (
    "see razvanmarinescu/brgm-pytorch (weights released by the BRGM authors; no separate weights licence "
    "stated); training data: {data}"
)
_BRGM_DESC = (
    "BRGM's StyleGAN2 config-e generator trained on {data} ({res}x{res}, {ch} channel{s}), a TensorFlow "
    "StyleGAN2 pickle (G, D, Gs) read without running its code. sha256 not recorded yet: the first download is "
    "trusted and its hash printed."
)
_PGGAN_SOURCES = (
    "No direct-download URL is known for this PyTorch state dict: get "
    "'pretrain/pytorch/{file}' from mGANprior's model links (genforce/mganprior models/README.md, CUHK "
    "SharePoint) or from BIGPrior's Google Drive folder 1nWk76mPtPxWrd9-tPJA3H7zyQmHLYznQ (its pretrain/ folder), "
    "and place it in the genprior cache as models/{file} (fetch() prints the exact path). The Google Drive id "
    "{drive} is the original Theano-era pickle {pkl}, a different format, so it is not listed as a URL. "
    "sha256 not recorded yet."
)
_PGGAN_LICENSE = (
    "CC BY-NC 4.0 (Karras et al., progressive_growing_of_gans networks); PyTorch conversion by mGANprior "
    "(genforce/mganprior, see its licence); training data: {data}"
)


def _pggan_config(resolution: int) -> dict[str, Any]:
    """mGANprior's PGGAN generator settings (fused_scale off, z 512)."""
    kwargs = {"resolution": resolution, "z_space_dim": 512, "image_channels": 3, "fused_scale": False,
              "fmaps_base": 16384, "fmaps_max": 512}
    return {"family": "pggan", "kwargs": kwargs}


def _brgm(key: str, data: str, licence_data: str, res: int, ch: int, url: str) -> dict[str, Any]:
    """One of the three BRGM TF pickles."""
    return dict(
        name=f"brgm-{key}-{res}",
        filename=f"brgm-{key}.pkl",
        urls=(url,),
        sha256=None,
        license=_BRGM_LICENSE.format(data=licence_data),
        description=_BRGM_DESC.format(data=data, res=res, ch=ch, s="" if ch == 1 else "s"),
        format="tf-pkl",
        config={"family": "stylegan2", "kwargs": {"img_resolution": res, "img_channels": ch}},
    )


def _pggan(key: str, res: int, data: str, drive: str) -> dict[str, Any]:
    """One of mGANprior's PGGAN generators (state dict with no download URL)."""
    filename = f"pggan_{key}{res}_generator.pth"
    pkl = f"karras2018iclr-{'celebahq' if key == 'celebahq' else 'lsun-' + key}-{res}x{res}.pkl"
    return dict(
        name=f"pggan-{key}-{res}",
        filename=filename,
        urls=(),
        sha256=None,
        license=_PGGAN_LICENSE.format(data=data),
        description=f"PGGAN generator ({key}, {res}x{res} RGB), mGANprior's PyTorch state dict. "
        + _PGGAN_SOURCES.format(file=filename, drive=drive, pkl=pkl),
        format="mganprior-pth",
        config=_pggan_config(res),
    )


_LSUN = "LSUN (its terms)"


def _genprior_fusion(generator: str, task: str, sha256: str, size: int) -> dict[str, Any]:
    """A fusion net genprior trained for one of its shipped generators (genprior/models/README.md)."""
    data = "UTKFace (non-commercial research use only)" if "faces" in generator else "Brain Tumor MRI Dataset (CC0)"
    return dict(
        name=f"{generator}-{task}-fusion",
        filename=f"{generator}-{task}-fusion.safetensors",
        urls=(),
        sha256=sha256,
        license=f"genprior's weights: MIT; trained on {generator}'s inversions of {data} training images",
        description=f"genprior's BIGPrior fusion net (BoundedPhi) for {generator}, task {task}, trained on a CPU "
        "with scripts/train_fusion_nets.py (see genprior/models/README.md). Ships inside the package.",
        format="native",
        kind="fusion",
        config={"generator": generator, "task": task},
        size_bytes=size,
        packaged=True,
    )


def _bigprior_colorization(scene: str, generator: str, sha256: str) -> dict[str, Any]:
    """One of BIGPrior's official colorization fusion nets (DnCNN-17, 1-channel input) for a PGGAN LSUN scene."""
    return dict(
        name=f"bigprior-col-{scene}",
        filename=f"bigprior-col-{scene}-net_24.pth",
        urls=(),
        sha256=sha256,
        license="MIT (official BIGPrior repository, Helou & Süsstrunk); trained on LSUN (its terms) through "
        "mGANprior's PGGAN inversions",
        description=f"BIGPrior's official colorization fusion net for LSUN {scene} (experiment col_{scene}_1, "
        "epoch 24; a PyTorch state dict read without running its code). No direct-download URL: get "
        f"col_{scene}_1/net_24.pth from the official BIGPrior repository's results and place it in the genprior "
        "cache (fetch() prints the exact path); found in place under the shared folder's data/bigprior-nets.",
        format="bigprior-pth",
        kind="fusion",
        config={"generator": generator, "task": "colorize"},
        search=(f"data/bigprior-nets/col_{scene}_1/net_24.pth",),
    )

MODELS: tuple[dict[str, Any], ...] = (
    _brgm("ffhq", "FFHQ faces (90 % train split)", "FFHQ (CC BY-NC-SA 4.0)", 1024, 3,
          "https://dl.dropboxusercontent.com/s/jlgybz6nfhmpv54/ffhq.pkl"),
    _brgm("xray", "MIMIC chest X-rays (frontal)", "MIMIC-CXR (PhysioNet credentialed access)", 1024, 1,
          "https://dl.dropboxusercontent.com/s/gphxjioth6dn5kb/xray.pkl"),
    _brgm("brains", "T1 brain MRI slices (ADNI, GSP, ABIDE, ADHD200, PPMI, OASIS, MCIC, COBRE)",
          "brain MRI collections (ADNI, OASIS, ... each under its own data-use terms)", 256, 1,
          "https://dl.dropboxusercontent.com/s/p9vgdcn5q3wpcuo/brains.pkl"),
    dict(
        name="stylegan2-ada-ffhq-1024",
        filename="stylegan2-ada-ffhq.pkl",
        urls=("https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/ffhq.pkl",),
        sha256=None,
        license="NVIDIA Source Code License for StyleGAN2-ADA (non-commercial research use); "
        "training data: FFHQ (CC BY-NC-SA 4.0)",
        description="NVlabs stylegan2-ada-pytorch FFHQ generator (config-f, 1024x1024 RGB), a native network "
        "pickle read without running its code. Not BRGM's network: trained on all of FFHQ, so it has seen "
        "BRGM's test split. sha256 not recorded yet: the first download is trusted and its hash printed.",
        format="nvlabs-pkl",
    ),
    dict(
        name="lpips-vgg16",
        filename="lpips-vgg16.pt",
        urls=("https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/vgg16.pt",),
        # Not hashed here (no network). The same 64 digits are recorded by two unrelated projects that check the
        # download against them (snap-research/discoscene models/perceptual_model.py, and a GuardBench run
        # script that aborts on a mismatch), and they agree with the prefix b437eb09 / suffix c07c3 noted
        # independently in BRGM.md section 2.1.
        sha256="b437eb095feaeb0b83eb3fa11200ebca4548ee39a07fb944a417ddc516cc07c3",
        license="LPIPS linear weights BSD-2-Clause (Zhang et al. 2018); VGG16 ImageNet weights CC BY 4.0 "
        "(Simonyan & Zisserman); TorchScript port distributed by NVIDIA with stylegan2-ada-pytorch "
        "(NVIDIA Source Code License)",
        description="NVIDIA's TorchScript LPIPS-VGG16 ('lin'), the perceptual net of BRGM and stylegan2-ada-pytorch "
        "metrics. genprior reads only its tensors (genprior.io.torchscript; its code is never run) into "
        "genprior.losses.LPIPS. sha256 taken from public projects that verify it, not yet hashed by genprior; a "
        "copy in the shared folder is used from weights/vgg16.pt.",
        format="lpips-vgg-pt",
        kind="perceptual",
        search=("weights/vgg16.pt",),
    ),
    _pggan("bedroom", 256, _LSUN, "1xbb2xakSn22lZoUcdaydQaBHoBSiUt6T"),
    _pggan("churchoutdoor", 256, _LSUN, "1yGlooC5u4KuiOMzuJiA1W-MW4WB-wqnf"),
    _pggan("conferenceroom", 256, _LSUN, "1yLZ2YJ1ajh-amUJMpOmFHL9P3810xdqk"),
    _pggan("celebahq", 1024, "CelebA-HQ (CelebA: non-commercial research use)", "188K19ucknC6wg1R6jbuPEhTq9zoufOx4"),
    dict(
        name="vgg16-imagenet-features",
        filename="vgg16-imagenet-features.safetensors",
        urls=(),
        sha256="02ba23e6c58a56bd38ce1ed7fd809cac8e8f8bb85da6ea2208e736555cef54d2",
        license="CC BY 4.0 (Simonyan & Zisserman's VGG16 ImageNet weights)",
        description="The 13 conv layers of ImageNet VGG16 (torchvision layer indices), float16, RGB input 0..255 "
        "minus the ImageNet mean. Found in the shared folder (weights/); no download URL.",
        format="vgg16-safetensors",
        kind="perceptual",
        size_bytes=29432040,
        search=("weights/vgg16-imagenet-features.safetensors",),
    ),
    dict(
        name="inception-fid",
        filename="pt_inception-2015-12-05-6726825d.pth",
        urls=("https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
              "pt_inception-2015-12-05-6726825d.pth",),
        # Not hashed here (no network): the 64 digits are recorded beside this URL by snap-research/discoscene
        # (models/inception_model.py) and begin with the 8 hex digits torch.hub checks in the file name.
        sha256="6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2",
        license="Apache-2.0 (pytorch-fid's PyTorch port of TensorFlow's inception-2015-12-05 ImageNet weights)",
        description="FID's Inception-v3 (TF 2015-12-05 weights as ported by pytorch-fid; torch state dict, read "
        "with weights_only=True). When cached, `genprior evaluate` and benchmarks/training.py report FID with it.",
        format="fid-inception-pth",
        kind="metric",
        size_bytes=95628359,
        search=("weights/pt_inception-2015-12-05-6726825d.pth",),
    ),
    dict(
        name="dcgan-digiface64",
        filename="dcgan-digiface64.safetensors",
        urls=(),
        sha256="a3b27a499b9edf64b24aa35ac91d77d8b654b5e3a43e7a55f6c2d9a29ceb96de",
        license="MIT (gan-face-generate 1.1.1, © 2023 chien liu); trained on DigiFace-1M (non-commercial terms)",
        description="A small DCGAN face generator: z (N,100,1,1) ~ N(0, I) to 64x64 RGB in [-1, 1], float16, "
        "PyTorch DCGAN tutorial layout. Found in the shared folder (weights/); no download URL.",
        format="dcgan-safetensors",
        size_bytes=7159952,
        search=("weights/dcgan-digiface64.safetensors",),
    ),
    dict(
        name="genprior-digits32",
        filename="genprior-digits32.safetensors",
        urls=(),
        sha256="6f4e7b96686c6ac536cae5581d33c070d27ad2a1e5ae545d5549047931b6e29d",
        license="genprior's weights: MIT; trained on the MNIST test set (Y. LeCun, C. Cortes; CC BY-SA 3.0)",
        description="genprior's StyleGAN2 for handwritten digits, 32x32 grey, trained on a CPU (73 kimg, "
        "2.0 CPU hours; see genprior/models/README.md). Ships inside the package.",
        format="native",
        size_bytes=2687148,
        packaged=True,
    ),
    dict(
        name="genprior-faces64",
        filename="genprior-faces64.safetensors",
        urls=(),
        sha256="ab5c204171c5d7f49e9d2bf4042c1c6ba01a061f8e81b7f50121744fcbf26706",
        license="genprior's weights: MIT; trained on UTKFace aligned crops (Zhang, Song, Qi 2017), whose terms allow "
        "non-commercial research use only",
        description="genprior's StyleGAN2 for faces, 64x64 RGB, trained on a CPU (87 kimg, 4.9 CPU hours, then 6 kimg "
        "of vision-aided fine-tuning; see genprior/models/README.md). Ships inside the package.",
        format="native",
        size_bytes=4565600,
        packaged=True,
    ),
    dict(
        name="genprior-brain64",
        filename="genprior-brain64.safetensors",
        urls=(),
        sha256="d25b00727c236cc0f84c976f4961657a40f2173cdfe75bab3588c8edd8efb7dc",
        license="genprior's weights: MIT; trained on the Brain Tumor MRI Dataset train split (M. Nickparvar; CC0)",
        description="genprior's StyleGAN2 for brain MRI slices, 64x64 grey, trained on a CPU (early: 65 kimg, "
        "3.7 CPU hours; see genprior/models/README.md). Ships inside the package.",
        format="native",
        size_bytes=4561424,
        packaged=True,
    ),
    _genprior_fusion("genprior-faces64", "denoise",
                     "78b602c8346e18b5b63d38f8316c54953ae9e41297edd7c20840635a83624645", 237944),
    _genprior_fusion("genprior-faces64", "inpaint",
                     "c1ffb773da55c315ce99b5e9d548eb4487619bcdc6a660ffabcd46694d677d6d", 239064),
    _genprior_fusion("genprior-faces64", "colorize",
                     "ed3124b0a9ad75984bc5962ffdfb34e621f0a2aff91c0c31814623a623be242b", 235608),
    _genprior_fusion("genprior-brain64", "denoise",
                     "0b45da4270dc0ef7c92ccd32504fe91ead83a06f35c2f7b99f8d42cf8dfbb6fc", 237912),
    _genprior_fusion("genprior-brain64", "inpaint",
                     "d106ef3d3ca605884074e74d95191dcb934325a235a3285f6accc30d12247e30", 239064),
    _bigprior_colorization("bedroom", "pggan-bedroom-256",
                           "b388db51c7b8494a9379447c8762ed5c4443a14a05d160fd3aaf67bb98527f99"),
    _bigprior_colorization("church", "pggan-churchoutdoor-256",
                           "ef8090804119746f5e8032337d6e20d2ca7d5023750c54809f8cc2b5eb2e058d"),
)
