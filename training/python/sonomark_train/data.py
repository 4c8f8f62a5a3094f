"""The training set written by training/datasets/export.ts.

Frames come from the project's own TypeScript decoder (uint8, exactly the bytes
serving scales by 1/255); labels, groups and folds come from
training/datasets/pocus.ts. Nothing here decodes video or decides a split.
"""
import hashlib
import json
import os

import numpy as np
import torch


class TrainingSet:
    def __init__(self, root):
        with open(os.path.join(root, "dataset.json")) as f:
            meta = json.load(f)
        self.root = root
        self.meta = meta
        self.size = meta["size"]
        self.labels = list(meta["biomarkers"])
        self.diagnoses = list(meta["diagnoses"])
        self.items = meta["items"]
        self.frames = []
        for it in self.items:
            arr = np.load(os.path.join(root, it["npy"]))
            if arr.dtype != np.uint8 or arr.shape[1:] != (1, self.size, self.size):
                raise ValueError(f"{it['npy']}: expected uint8 [n,1,{self.size},{self.size}], got {arr.dtype} {arr.shape}")
            self.frames.append(torch.from_numpy(arr))
        nan = float("nan")
        self.y = torch.tensor(
            [[nan if it["biomarkers"][b] is None else float(it["biomarkers"][b]) for b in self.labels] for it in self.items]
        )
        # -1: not labelled for diagnosis (COVID-BLUES patients outside the three classes).
        self.diagnosis = torch.tensor(
            [self.diagnoses.index(it["diagnosis"]) if it.get("diagnosis") else -1 for it in self.items]
        )
        self.fold = np.array([it["fold"] for it in self.items])
        self.group = [it["group"] for it in self.items]
        self.source = [it["source"] for it in self.items]
        # Collection of each item ("pocus" when the set predates COVID-BLUES): balancing and reports.
        self.dataset = [it.get("dataset", "pocus") for it in self.items]
        self.n_folds = int(meta["folds"])

    def __len__(self):
        return len(self.items)

    def frame_count(self, i):
        return self.frames[i].shape[0]

    def sample(self, indices, per_clip, gen):
        """Random frames (with replacement for short clips) from each clip: [len*per_clip,1,S,S] float in [0,1]."""
        out = []
        for i in indices:
            n = self.frames[i].shape[0]
            pick = torch.randint(0, n, (per_clip,), generator=gen)
            out.append(self.frames[i][pick])
        return torch.cat(out).float().div_(255.0)

    def clip(self, i):
        return self.frames[i].float().div_(255.0)

    def tensor_sha256(self, i):
        """sha256 of the uint8 tensor training reads: the parity test compares it with the TS decoder's bytes."""
        return hashlib.sha256(self.frames[i].numpy().tobytes()).hexdigest()
