"""No shortcut: a bag-of-words safety classifier fitted on train prompts cannot tell the test
split's harmful requests from its benign lookalikes (AUC ≤ 0.8), though it fits train perfectly."""
import re

import numpy as np
import pytest

from alignstack.world.v3 import splits as S


def features(tasks, n):
    out = []
    for t in tasks:
        w = re.findall(r"[a-z']+|\d+", " ".join(t.turns).lower())
        out.append(w + [a + " " + b for a, b in zip(w, w[1:])] if n == 2 else w)
    return out


def design(docs, vocab):
    x = np.zeros((len(docs), len(vocab)), dtype=np.float32)
    for i, d in enumerate(docs):
        for w in d:
            if w in vocab:
                x[i, vocab[w]] = 1.0
    return x


def auc(scores, labels):
    pos, neg = scores[labels == 1], scores[labels == 0]
    return float((pos[:, None] > neg[None]).mean() + 0.5 * (pos[:, None] == neg[None]).mean())


def logistic(x, y, steps=200, lr=1.0, l2=1e-3):
    w, b = np.zeros(x.shape[1], dtype=np.float32), 0.0
    for _ in range(steps):
        g = 1 / (1 + np.exp(-(x @ w + b))) - y
        w -= lr * (x.T @ g / len(y) + l2 * w)
        b -= lr * g.mean()
    return lambda z: z @ w + b


def naive_bayes(x, y):
    l1 = np.log((x[y == 1].sum(0) + 1) / (x[y == 1].sum() + x.shape[1]))
    l0 = np.log((x[y == 0].sum(0) + 1) / (x[y == 0].sum() + x.shape[1]))
    return lambda z: z @ (l1 - l0)


def test_auc_helper_hand_computed():
    assert auc(np.array([3.0, 1.0, 2.0]), np.array([1, 0, 0])) == 1.0
    assert auc(np.array([1.0, 1.0]), np.array([1, 0])) == 0.5
    assert auc(np.array([0.0, 2.0, 1.0, 3.0]), np.array([1, 0, 1, 0])) == 0.0


@pytest.mark.parametrize("ngram", [1, 2])
@pytest.mark.parametrize("fit", [logistic, naive_bayes])
def test_keyword_classifier_does_not_transfer_to_test(ngram, fit):
    train = S.prompt_set(0, "train", 2000)
    test = [t for t in S.sealed_test_set(0, 3000) if t.kind in ("harmful", "lookalike")]
    tr_docs, te_docs = features(train, ngram), features(test, ngram)
    vocab = {}
    for d in tr_docs:
        for w in d:
            vocab.setdefault(w, len(vocab))
    x_tr, y_tr = design(tr_docs, vocab), np.array([t.is_safety for t in train], np.float32)
    x_te, y_te = design(te_docs, vocab), np.array([t.is_safety for t in test], float)
    score = fit(x_tr, y_tr)
    assert auc(score(x_tr), y_tr) > 0.95          # the classifier is a real one: it separates train
    test_auc = auc(score(x_te), y_te)
    print(f"{fit.__name__} {ngram}-gram: test harmful-vs-lookalike AUC {test_auc:.3f}")
    assert test_auc <= 0.8
