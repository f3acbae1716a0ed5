# Usage: OMP_NUM_THREADS=2 python scripts/fastai_trec6.py SEED [TREC_DIR]   (needs torch + fastai)
# fastai 2.8.12 on TREC-6 with issue #5's set-up: from scratch, emb 200, hidden 600, 3 layers,
# 8 epochs one-cycle at lr 1e-2, batch 64, drop_mult 0.5, seed 0; validation = the TREC_10 test set.
import sys, time, json
import pandas as pd, torch
from fastai.text.all import *
torch.set_num_threads(2)
seed = int(sys.argv[1]) if len(sys.argv) > 1 else 0
d = Path(sys.argv[2] if len(sys.argv) > 2 else '../shared/data/trec')
def read(f, valid):
    rows = []
    for line in open(d / f, encoding='latin-1'):
        lab, text = line.rstrip('\n').split(' ', 1)
        rows.append((lab.split(':')[0], text, valid))
    return rows
df = pd.DataFrame(read('train_5500.label', False) + read('TREC_10.label', True), columns=['label', 'text', 'is_valid'])
set_seed(seed, reproducible=True)
dls = TextDataLoaders.from_df(df, text_col='text', label_col='label', valid_col='is_valid', bs=64, seed=seed)
cfg = awd_lstm_clas_config.copy(); cfg.update(emb_sz=200, n_hid=600, n_layers=3)
learn = text_classifier_learner(dls, AWD_LSTM, drop_mult=0.5, pretrained=False, config=cfg, metrics=accuracy)
t = time.time()
learn.fit_one_cycle(8, 1e-2)
secs = time.time() - t
loss, acc = learn.validate()
print(json.dumps({"framework": "fastai", "seed": seed, "accuracy": float(acc), "train_seconds": secs, "n_train": len(dls.train_ds), "n_valid": len(dls.valid_ds)}))
