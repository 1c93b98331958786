"""Regenerate resources/sample_plate.png: a synthetic SK plate photo of the tutorial's size.

800x322 pixels like the tutorial's photo, so `bench` times the same workload; characters
about 80 px tall, so the net's 28-pixel window fits them near scale 0.28 (`--scale auto`).
Run: .venv/bin/python scripts/make_sample_plate.py
"""
import numpy as np

from viewer.dataset.plates import PhotoAugment, PlateStyle, synthesize_plate
from viewer.maps.export import save_png
from viewer.files.paths import SAMPLE_PLATE

WIDTH, HEIGHT = 800, 322


def main() -> None:
    style = PlateStyle(layout="SK", country="SK", surround_ratio=0.35)
    gentle = PhotoAugment(max_rotation_deg=1.5, max_shear=0.02, max_perspective=0.01,
                          blur=(0.01, 0.02), resolution_loss=0.0, shadow=0.0, noise=(2.0, 4.0),
                          jpeg=0.0)
    plate = synthesize_plate("RK-857AI", np.random.default_rng(2015), char_height_px=80,
                             style=style, augment=gentle)
    canvas = np.full((HEIGHT, WIDTH), int(np.median(plate.image[:3])), np.uint8)
    h, w = plate.image.shape
    if h > HEIGHT or w > WIDTH:
        raise SystemExit(f"plate is {w}x{h}, larger than {WIDTH}x{HEIGHT}")
    top, left = (HEIGHT - h) // 2, (WIDTH - w) // 2
    canvas[top:top + h, left:left + w] = plate.image
    save_png(canvas, SAMPLE_PLATE)
    print(f"wrote {SAMPLE_PLATE} ({w}x{h} plate on {WIDTH}x{HEIGHT})")


if __name__ == "__main__":
    main()
