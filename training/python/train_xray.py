#!/usr/bin/env python3
"""Train the chest X-ray extractor (`sonomark train xray`, npm run train:xray).

Reads the training set written by exportCxrTrainingSet (training/datasets/export.ts: xray-1 pictures
from the serving decoder, targets, patient groups, folds), then:
  1. group-masked self-supervised pretraining of the encoder on every picture (no labels; see
     sonomark_train/xray.py);
  2. the encoder frozen: per-finding logistic heads (masked BCE) out of fold (folds by patient) for the
     card's AUCs, then on every labelled picture for the shipped model;
  3. ONNX export (frames [N,1,S,S] -> biomarkers [N,3], embedding [N,D]), the parity fixture and PyTorch's
     outputs on every training picture (ship-xray.ts compares onnxruntime with them);
  4. the anchor comparison (--anchor): the same network pretrained vs from scratch, trained with 1 %,
     10 % and 100 % of the labelled training patients, on Kermany normal vs pneumonia, tested on the
     patients of fold 0 (never trained on), AUC with a patient bootstrap CI.

Runs on CPU (Debian python3-torch). Usage: train_xray.py --data DIR --out DIR [--quick] [--anchor]
"""
import argparse
import hashlib
import json
import os
import platform
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from sonomark_train.metrics import auc, group_bootstrap_ci  # noqa: E402,F401
from sonomark_train import xray  # noqa: E402

CONFIG = {
    "widths": [32, 48, 64],
    "patch": xray.PATCH,
    "mask_ratio": xray.MASK_RATIO,
    "ssl_steps": 1200,
    "ssl_batch": 32,
    "ssl_lr": 2e-3,
    "head_weight_decay": 1e-2,
    # Anchor comparison: fine-tuning steps per fit, whatever the number of labels (the same budget for
    # both arms), batch, learning rate; seeds per fraction.
    "ft_steps": 150,
    "ft_batch": 32,
    "ft_lr": 1e-3,
    "fractions": [0.01, 0.1, 1.0],
    "seeds_per_fraction": {"0.01": 3, "0.1": 1, "1.0": 1},
}
QUICK = {"ssl_steps": 300, "ft_steps": 60, "seeds_per_fraction": {"0.01": 1, "0.1": 1, "1.0": 1}}
OPSET = 13
ANCHOR_TEST_FOLD = 0
BOOTSTRAP_REPS = 1000


def log(msg):
    print(msg, flush=True)


class CxrSet:
    def __init__(self, root):
        with open(os.path.join(root, "dataset.json")) as f:
            meta = json.load(f)
        if meta.get("dataset") != "cxr" or meta.get("preprocessing") != "xray-1":
            raise ValueError(f"{root}/dataset.json is not an xray-1 chest X-ray training set")
        self.meta = meta
        self.size = meta["size"]
        self.findings = list(meta["findings"])
        self.items = meta["items"]
        arrs = []
        for it in self.items:
            a = np.load(os.path.join(root, it["npy"]))
            if a.dtype != np.uint8 or a.shape != (1, 1, self.size, self.size):
                raise ValueError(f"{it['npy']}: expected uint8 [1,1,{self.size},{self.size}], got {a.dtype} {a.shape}")
            arrs.append(a)
        self.frames = torch.from_numpy(np.concatenate(arrs))
        nan = float("nan")
        self.y = torch.tensor([[nan if it["targets"][k] is None else float(it["targets"][k]) for k in self.findings]
                               for it in self.items])
        self.fold = np.array([it["fold"] for it in self.items])
        self.group = np.array([it["group"] for it in self.items])
        self.source = np.array([it["source"] for it in self.items])
        self.label = np.array([it["label"] for it in self.items])
        self.n_folds = int(meta["folds"])

    def tensor_sha256(self, i):
        return hashlib.sha256(self.frames[i:i + 1].numpy().tobytes()).hexdigest()


def rank_auc(y, s):
    """ROC AUC by the Mann-Whitney rank sum (ties count half); None when one class is missing.

    The same statistic as metrics.auc, in O(n log n): the bootstrap runs it a thousand times on up to
    4,800 pictures, where the pairwise form would hold millions of comparisons each time.
    """
    y = np.asarray(y, dtype=float)
    s = np.asarray(s, dtype=float)
    n1 = int(np.sum(y == 1))
    n0 = int(np.sum(y == 0))
    if n1 == 0 or n0 == 0:
        return None
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s))
    sorted_s = s[order]
    # Average ranks over ties.
    _, start, counts = np.unique(sorted_s, return_index=True, return_counts=True)
    avg = start + (counts + 1) / 2.0
    ranks[order] = np.repeat(avg, counts)
    return float((ranks[y == 1].sum() - n1 * (n1 + 1) / 2.0) / (n1 * n0))


def standardise(z):
    mean = z.mean(0)
    std = z.std(0).clamp(min=1e-6)
    return mean, std


def auc_ci(y, s, groups):
    a = rank_auc(y, s)
    ci = group_bootstrap_ci(y, s, groups, stat=rank_auc, reps=BOOTSTRAP_REPS) if a is not None else None
    return {"auc": a, "ci95": ci, "n": int(len(y)), "positives": int(np.sum(y == 1)),
            "patients": int(len(np.unique(groups)))}


def oof_heads(data, z, cfg):
    """Per-finding AUCs out of fold (heads refitted without each patient fold), overall and per source."""
    zs = (z - z.mean(0)) / z.std(0).clamp(min=1e-6)
    oof = np.full(data.y.shape, np.nan)
    for f in range(data.n_folds):
        train = data.fold != f
        w, b = xray.fit_heads(zs[train], data.y[train], cfg["head_weight_decay"])
        oof[~train] = torch.sigmoid(zs[~train] @ w.T + b).numpy()
    report = {}
    y = data.y.numpy()
    for k, name in enumerate(data.findings):
        lab = ~np.isnan(y[:, k])
        entry = {"all": auc_ci(y[lab, k], oof[lab, k], data.group[lab]), "sources": {}}
        for s in sorted(set(data.source[lab])):
            m = lab & (data.source == s)
            entry["sources"][s] = auc_ci(y[m, k], oof[m, k], data.group[m])
        report[name] = entry
        log(f"[heads] {name}: out-of-fold AUC {entry['all']['auc']} CI {entry['all']['ci95']} (n {entry['all']['n']})")
    return report, oof


def source_probe(data, z):
    """How well the frozen embedding tells the sources apart (out of fold, by patient): the confound to know."""
    zs = (z - z.mean(0)) / z.std(0).clamp(min=1e-6)
    adult = torch.tensor(data.source != "kermany-pediatric", dtype=torch.float32)[:, None]
    oof = np.zeros(len(adult))
    for f in range(data.n_folds):
        train = data.fold != f
        w, b = xray.fit_heads(zs[train], adult[train])
        oof[~train] = torch.sigmoid(zs[~train] @ w.T + b).numpy()[:, 0]
    return auc_ci(adult.numpy()[:, 0], oof, data.group)


def export_onnx(model, path, size):
    torch.onnx.export(
        model.eval(),
        torch.zeros(2, 1, size, size),
        path,
        input_names=["frames"],
        output_names=["biomarkers", "embedding"],
        dynamic_axes={"frames": {0: "n"}, "biomarkers": {0: "n"}, "embedding": {0: "n"}},
        opset_version=OPSET,
        do_constant_folding=True,
    )


def write_parity(model, data, out):
    probs, embs = [], []
    with torch.no_grad():
        for s in range(0, len(data.items), 256):
            p, e = model(data.frames[s:s + 256].float().div_(255.0))
            probs.append(p.numpy())
            embs.append(e.numpy())
    probs = np.concatenate(probs).astype(np.float32)
    embs = np.concatenate(embs).astype(np.float32)
    np.save(os.path.join(out, "parity-full-biomarkers.npy"), probs)
    np.save(os.path.join(out, "parity-full-embedding.npy"), embs)
    with open(os.path.join(out, "parity.json"), "w") as f:
        json.dump({"clip": data.items[0]["file"], "tensorSha256": data.tensor_sha256(0), "frames": 1,
                   "biomarkers": probs[:1].tolist(), "embedding": embs[:1].tolist()}, f)


def subsample_patients(groups, fraction, seed):
    """A seeded random `fraction` of the patients (at least 2), every picture of each."""
    uniq = np.unique(groups)
    rng = np.random.default_rng(seed)
    n = max(2, int(round(fraction * len(uniq))))
    keep = set(rng.choice(uniq, size=n, replace=False).tolist())
    return np.array([g in keep for g in groups])


def run_anchor(data, ssl_state, cfg, seed):
    """Kermany normal vs pneumonia: pretrained vs scratch (fine-tuned), and the frozen pretrained linear probe."""
    k = data.findings.index("pneumonia")
    y = data.y[:, k].numpy()
    kermany = (data.source == "kermany-pediatric") & ~np.isnan(y)
    test = kermany & (data.fold == ANCHOR_TEST_FOLD)
    pool = kermany & (data.fold != ANCHOR_TEST_FOLD)
    pool_idx = np.flatnonzero(pool)
    test_idx = np.flatnonzero(test)
    rows = []
    for fraction in cfg["fractions"]:
        for r in range(cfg["seeds_per_fraction"][str(fraction)]):
            s = seed + 1000 * r
            keep = pool_idx[subsample_patients(data.group[pool_idx], fraction, s)] if fraction < 1 else pool_idx
            ytr = y[keep]
            if len(np.unique(ytr)) < 2:
                log(f"[anchor] {fraction:.0%} seed {s}: one class only, skipped")
                continue
            for arm in ("ssl-finetune", "scratch", "ssl-linear"):
                t0 = time.time()
                enc = xray.Encoder(tuple(cfg["widths"]))
                torch.manual_seed(s)
                if arm != "scratch":
                    enc.load_state_dict(ssl_state)
                if arm == "ssl-linear":
                    z = xray.embed(enc, data.frames[keep])
                    mean, std = standardise(z)
                    w, b = xray.fit_heads((z - mean) / std, torch.tensor(ytr, dtype=torch.float32)[:, None],
                                          cfg["head_weight_decay"])
                    zt = xray.embed(enc, data.frames[test_idx])
                    score = (((zt - mean) / std) @ w.T + b).numpy()[:, 0]
                else:
                    model = xray.finetune(enc, data.frames[keep], ytr, cfg["ft_steps"], cfg["ft_batch"], cfg["ft_lr"], s)
                    score = xray.predict(model, data.frames[test_idx])
                res = auc_ci(y[test_idx], score, data.group[test_idx])
                row = {"fraction": fraction, "seed": s, "arm": arm, "train_images": int(len(keep)),
                       "train_patients": int(len(np.unique(data.group[keep]))), **res, "fit_s": round(time.time() - t0, 1)}
                rows.append(row)
                log(f"[anchor] {fraction:.0%} seed {s} {arm}: AUC {res['auc']:.3f} CI {res['ci95']} "
                    f"({row['train_images']} images, {row['fit_s']} s)")
    summary = {}
    for fraction in cfg["fractions"]:
        for arm in ("ssl-finetune", "scratch", "ssl-linear"):
            a = [r["auc"] for r in rows if r["fraction"] == fraction and r["arm"] == arm]
            if a:
                summary[f"{fraction}/{arm}"] = {"mean_auc": float(np.mean(a)), "min": float(np.min(a)),
                                                "max": float(np.max(a)), "seeds": len(a)}
    return {
        "task": "kermany-pediatric: pneumonia (bacterial or viral) vs normal",
        "test": {"fold": ANCHOR_TEST_FOLD, "images": int(len(test_idx)),
                 "patients": int(len(np.unique(data.group[test_idx]))),
                 "positives": int(np.sum(y[test_idx] == 1))},
        "pool": {"images": int(len(pool_idx)), "patients": int(len(np.unique(data.group[pool_idx])))},
        "rows": rows,
        "summary": summary,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=20261202)
    ap.add_argument("--quick", action="store_true", help="a short run (the early model): fewer SSL steps")
    ap.add_argument("--anchor", action="store_true", help="also run the 1%%/10%%/100%% anchor comparison")
    ap.add_argument("--anchor-only", action="store_true", help="the anchor comparison on the encoder already in --out")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a CONFIG value (JSON)")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = dict(CONFIG)
    if args.quick:
        cfg.update(QUICK)
    for kv in args.set:
        key, value = kv.split("=", 1)
        if key not in cfg:
            raise SystemExit(f"--set {key}: not a CONFIG key ({', '.join(cfg)})")
        cfg[key] = json.loads(value)
    os.makedirs(args.out, exist_ok=True)
    started = time.time()
    data = CxrSet(args.data)
    log(f"{len(data.items)} pictures {data.size}x{data.size}, {data.n_folds} folds, findings {data.findings}")
    torch.manual_seed(args.seed)
    encoder_file = os.path.join(args.out, "encoder.pt")
    report_file = os.path.join(args.out, "report.json")

    if args.anchor_only:
        with open(report_file) as f:
            report = json.load(f)
        ssl_state = torch.load(encoder_file)
    else:
        encoder = xray.Encoder(tuple(cfg["widths"]))
        t0 = time.time()
        curve = xray.pretrain(encoder, data.frames, cfg["ssl_steps"], cfg["ssl_batch"], cfg["ssl_lr"], args.seed, log)
        ssl_s = time.time() - t0
        torch.save(encoder.state_dict(), encoder_file)
        ssl_state = encoder.state_dict()
        z = xray.embed(encoder, data.frames)
        findings, _ = oof_heads(data, z, cfg)
        source = source_probe(data, z)
        log(f"[heads] adult vs pediatric from the embedding, out of fold: AUC {source['auc']:.3f}")
        mean, std = standardise(z)
        w, b = xray.fit_heads((z - mean) / std, data.y, cfg["head_weight_decay"])
        model = xray.XrayExtractor(encoder, mean, std, w, b).eval()
        export_onnx(model, os.path.join(args.out, "extractor.onnx"), data.size)
        write_parity(model, data, args.out)
        report = {
            "recipe": "group-masked image modelling (SSL) + frozen-encoder logistic heads",
            "config": cfg,
            "seed": args.seed,
            "quick": args.quick,
            "size": data.size,
            "embedding_dim": encoder.embedding_dim,
            "parameters": sum(p.numel() for p in encoder.parameters()),
            "findings": data.findings,
            "items": len(data.items),
            "sources": {s: int(np.sum(data.source == s)) for s in sorted(set(data.source))},
            "ssl_curve": curve,
            "heads_oof": findings,
            "source_probe": source,
            "times": {"ssl_s": round(ssl_s, 1)},
            "hardware": {"machine": platform.machine(), "threads": args.threads, "torch": torch.__version__,
                         "cuda": False},
        }
    if args.anchor or args.anchor_only:
        t0 = time.time()
        report["anchor"] = run_anchor(data, ssl_state, cfg, args.seed)
        report["times"]["anchor_s"] = round(time.time() - t0, 1)
        with open(os.path.join(args.out, "anchor.json"), "w") as f:
            json.dump(report["anchor"], f, indent=1)
    report["times"]["total_s"] = round(report["times"].get("total_s", 0) + time.time() - started, 1)
    with open(report_file, "w") as f:
        json.dump(report, f, indent=1)
    log(f"done in {time.time() - started:.0f} s")


if __name__ == "__main__":
    main()
