"""Content fingerprints: same content -> same hash; any pixel/label change -> new hash."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from advisor.data import load_dataset


def _is_sha256(h: str) -> bool:
    return isinstance(h, str) and len(h) == 64 and all(c in "0123456789abcdef" for c in h)


def test_folder_fingerprint(tmp_path, make_folder):
    a = tmp_path / "a" / "data"
    make_folder(a, {"x": 3, "y": 3})
    fa = load_dataset(str(a)).fingerprint()
    assert _is_sha256(fa)

    # same content at another path -> same hash
    b = tmp_path / "elsewhere" / "copy"
    shutil.copytree(a, b)
    assert load_dataset(str(b)).fingerprint() == fa

    # one changed pixel -> different hash
    p = b / "y" / "img01.png"
    arr = np.asarray(Image.open(p)).copy()
    arr[0, 0] ^= 1
    Image.fromarray(arr).save(p)
    fb = load_dataset(str(b)).fingerprint()
    assert fb != fa

    # one changed label (file moved to the other class) -> different hash
    c = tmp_path / "c"
    shutil.copytree(a, c)
    shutil.move(str(c / "x" / "img02.png"), str(c / "y" / "img99.png"))
    assert load_dataset(str(c)).fingerprint() not in (fa, fb)


def test_manifest_fingerprint_label_change(tmp_path, write_image, write_csv, pixels):
    for k in range(4):
        write_image(tmp_path / f"{k}.png", pixels(k))
    rows = [["0.png", "a"], ["1.png", "b"], ["2.png", "a"], ["3.png", "b"]]
    m1 = write_csv(tmp_path / "m1.csv", ["path", "label"], rows)
    m2 = write_csv(tmp_path / "m2.csv", ["path", "label"], rows)
    rows3 = [r[:] for r in rows]
    rows3[3][1] = ""  # one label now missing
    m3 = write_csv(tmp_path / "m3.csv", ["path", "label"], rows3)
    renamed = write_csv(tmp_path / "m4.csv", ["path", "kind"], rows)
    f1 = load_dataset(str(m1)).fingerprint()
    assert load_dataset(str(m2)).fingerprint() == f1
    assert load_dataset(str(m3)).fingerprint() != f1
    assert load_dataset(str(renamed)).fingerprint() != f1  # task names count


def test_array_fingerprint(tmp_path, pixels):
    x = np.stack([pixels(k) for k in range(6)])
    y = np.array([0, 1, 2, 0, 1, 2])
    np.savez(tmp_path / "a.npz", x=x, y=y)
    np.savez(tmp_path / "b.npz", x=x.copy(), y=y.copy())
    x2 = x.copy()
    x2[5, 9, 11] ^= 0x80
    np.savez(tmp_path / "c.npz", x=x2, y=y)
    y2 = y.copy()
    y2[0] = 1
    np.savez(tmp_path / "d.npz", x=x, y=y2)
    fa = load_dataset(str(tmp_path / "a.npz")).fingerprint()
    assert _is_sha256(fa)
    assert load_dataset(str(tmp_path / "b.npz")).fingerprint() == fa
    assert load_dataset(str(tmp_path / "c.npz")).fingerprint() != fa
    assert load_dataset(str(tmp_path / "d.npz")).fingerprint() != fa


def test_fingerprint_memoised_and_subset(tmp_path, pixels):
    x = np.stack([pixels(k) for k in range(6)])
    np.savez(tmp_path / "a.npz", x=x, y=np.array([0, 1, 0, 1, 0, 1]))
    ds = load_dataset(str(tmp_path / "a.npz"))
    f = ds.fingerprint()
    ds._images = ds._images.copy()
    ds._images[0] = 0  # not rehashed: computed once
    assert ds.fingerprint() == f
    sub = ds.subset([1, 2, 3])
    assert sub.fingerprint() != f
    # a subset hashes like a dataset holding just those items
    np.savez(tmp_path / "s.npz", x=x[[1, 2, 3]], y=np.array([1, 0, 1]))
    fresh = load_dataset(str(tmp_path / "a.npz")).subset([1, 2, 3])
    assert fresh.fingerprint() == load_dataset(str(tmp_path / "s.npz")).fingerprint()


def test_fingerprint_same_in_another_process(tmp_path, make_folder):
    root = tmp_path / "d"
    make_folder(root, {"x": 2, "y": 2})
    here = load_dataset(str(root)).fingerprint()
    code = (
        "import sys; from advisor.data import load_dataset; "
        "print(load_dataset(sys.argv[1]).fingerprint())"
    )
    repo = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-c", code, str(root)],
        cwd=repo, capture_output=True, text=True, check=True,
        env={"PYTHONHASHSEED": "12345", "PATH": "/usr/bin:/bin"},
    )
    assert out.stdout.strip() == here


def test_images_fingerprint_ignores_labels_only(tmp_path, write_image, write_csv, pixels):
    for k in range(4):
        write_image(tmp_path / f"{k}.png", pixels(k))
    rows = [["0.png", "a", "x"], ["1.png", "b", "x"], ["2.png", "a", "y"], ["3.png", "b", "y"]]
    m = write_csv(tmp_path / "m.csv", ["path", "label", "other"], rows)
    relabeled = write_csv(tmp_path / "r.csv", ["path", "kind"], [[r[0], "ab"[i % 2 == 0]] for i, r in enumerate(rows)])
    ds = load_dataset(str(m))
    f_images = ds.images_fingerprint()
    assert _is_sha256(f_images) and f_images != ds.fingerprint()
    # other labels, other label columns, other tasks: same images, same images fingerprint
    for variant in (load_dataset(str(relabeled)), load_dataset(str(m), label_columns=["other"]),
                    ds.with_tasks(["other"])):
        assert variant.fingerprint() != ds.fingerprint()
        assert variant.images_fingerprint() == f_images
    # other images, or the same images in another order or number: another fingerprint
    assert ds.subset([1, 0, 2, 3]).images_fingerprint() != f_images
    assert ds.subset([0, 1, 2]).images_fingerprint() != f_images
    write_image(tmp_path / "3.png", pixels(99))
    assert load_dataset(str(m)).images_fingerprint() != f_images


def test_fingerprint_value_unchanged_by_the_images_fingerprint():
    # computed before images_fingerprint existed: computing both in one pass leaves fingerprint() as it was
    ds = load_dataset("digits:10")
    assert ds.fingerprint() == "392160296fdb9b848a9dab4e5a9167ec739b734d6fcb2436244119547fff5176"
    ds2 = load_dataset("digits:10")
    ds2.images_fingerprint()
    assert ds2.fingerprint() == ds.fingerprint()
