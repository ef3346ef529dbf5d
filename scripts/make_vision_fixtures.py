#!/usr/bin/python3
"""Fixtures for secvit's image preprocessing, made by the reference tools themselves.

Debian's python3-pil and python3-torchvision (use /usr/bin/python3):
    /usr/bin/python3 scripts/make_vision_fixtures.py

Writes
  lib/vision/imagenet-classes.ts      torchvision's ImageNet-1k class names (class 0: tench)
  test/fixtures/images/<name>.<ext>   synthetic test images (seeded), lossless formats
  test/fixtures/images/<name>.crop224.png
      torchvision's eval transform up to the crop, on the PIL image:
      Resize(256, BICUBIC) -> CenterCrop(224), as 8-bit RGB
  test/fixtures/images/landscape.resized.png   Resize(256, BICUBIC) alone
  test/fixtures/images/landscape.s32.f32       the whole transform at size 32 (Resize(36),
      CenterCrop(32), ToTensor, Normalize(ImageNet)) as little-endian float32 [3, 32, 32]
  test/fixtures/images/oriented.jpg, plain.jpg  the same stored pixels, with EXIF orientation 6
      (display rotated 90 degrees clockwise) and without
  test/fixtures/images/manifest.json  sizes, modes, torch/PIL versions

CI never runs this; the outputs are committed.
"""
import json
import os

import numpy as np
import PIL
from PIL import Image
import torch
import torchvision
from torchvision import transforms
from torchvision.models._meta import _IMAGENET_CATEGORIES

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, 'test', 'fixtures', 'images')
os.makedirs(OUT, exist_ok=True)
rng = np.random.default_rng(20261122)


def scene(w, h):
    """Gradients, hard edges (bicubic overshoots them: clipping), blobs and mild noise."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    r = 128 + 100 * np.sin(x / w * 7.0) * np.cos(y / h * 3.0)
    g = 255 * (x / w)
    b = 255 * (y / h)
    img = np.stack([r, g, b], -1)
    checker = ((x // 7 + y // 5) % 2 == 0) & (x < w / 3) & (y > h / 2)
    img[checker] = [255, 255, 255]
    img[~checker & (x < w / 3) & (y > h / 2)] = [0, 0, 0]
    for _ in range(6):
        cx, cy, rad = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(5, min(w, h) / 4)
        m = (x - cx) ** 2 + (y - cy) ** 2 < rad ** 2
        img[m] = rng.integers(0, 256, 3)
    img += rng.normal(0, 6, img.shape)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


images = {
    'landscape': ('png', Image.fromarray(scene(320, 240), 'RGB')),
    'portrait': ('png', Image.fromarray(scene(211, 293), 'RGB')),
    'small': ('png', Image.fromarray(scene(61, 47), 'RGB')),
    'grey': ('png', Image.fromarray(scene(300, 260)[:, :, 1], 'L')),
    'rgba': ('png', Image.fromarray(np.concatenate([scene(250, 230), rng.integers(0, 256, (230, 250, 1), dtype=np.uint8)], -1), 'RGBA')),
}

crop = transforms.Compose([transforms.Resize(256, interpolation=transforms.InterpolationMode.BICUBIC), transforms.CenterCrop(224)])
manifest = {'pillow': PIL.__version__, 'torch': torch.__version__, 'torchvision': torchvision.__version__, 'images': {}}
for name, (ext, im) in images.items():
    path = os.path.join(OUT, f'{name}.{ext}')
    im.save(path)
    # What the reference's loader does with the file: Image.open(...).convert('RGB').
    rgb = Image.open(path).convert('RGB')
    crop(rgb).save(os.path.join(OUT, f'{name}.crop224.png'))
    manifest['images'][name] = {'file': f'{name}.{ext}', 'mode': im.mode, 'size': list(im.size)}

# An animated GIF: the reference reads its first frame.
frames = [Image.fromarray(scene(97, 80), 'RGB').quantize(64), Image.fromarray(scene(97, 80)[::-1], 'RGB').quantize(64)]
gif = os.path.join(OUT, 'anim.gif')
frames[0].save(gif, save_all=True, append_images=frames[1:], duration=100, loop=0)
crop(Image.open(gif).convert('RGB')).save(os.path.join(OUT, 'anim.crop224.png'))
manifest['images']['anim'] = {'file': 'anim.gif', 'mode': 'P', 'size': [97, 80], 'frames': 2}

land = Image.open(os.path.join(OUT, 'landscape.png')).convert('RGB')
transforms.Resize(256, interpolation=transforms.InterpolationMode.BICUBIC)(land).save(os.path.join(OUT, 'landscape.resized.png'))
small_tf = transforms.Compose([
    transforms.Resize(36, interpolation=transforms.InterpolationMode.BICUBIC), transforms.CenterCrop(32), transforms.ToTensor(),
    transforms.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
])
small_tf(land).numpy().astype('<f4').tofile(os.path.join(OUT, 'landscape.s32.f32'))

# EXIF orientation: the same stored pixels twice, once tagged 6 (rotate 90 clockwise to view).
stored = Image.fromarray(scene(64, 48), 'RGB')
exif = Image.Exif()
exif[0x0112] = 6
stored.save(os.path.join(OUT, 'oriented.jpg'), quality=95, exif=exif.tobytes())
stored.save(os.path.join(OUT, 'plain.jpg'), quality=95)

with open(os.path.join(OUT, 'manifest.json'), 'w') as f:
    json.dump(manifest, f, indent=1)

names = list(_IMAGENET_CATEGORIES)
assert len(names) == 1000 and names[0] == 'tench'
with open(os.path.join(ROOT, 'lib', 'vision', 'imagenet-classes.ts'), 'w') as f:
    f.write('// ImageNet-1k class names, in class-index order: torchvision\'s list\n')
    f.write(f'// (torchvision.models._meta._IMAGENET_CATEGORIES, torchvision {torchvision.__version__}).\n')
    f.write('// Generated by scripts/make_vision_fixtures.py; do not edit.\n')
    f.write('export const IMAGENET_CLASSES: readonly string[] = Object.freeze([\n')
    for n in names:
        f.write(f'  {json.dumps(n)},\n')
    f.write(']);\n')
print('wrote', OUT)
