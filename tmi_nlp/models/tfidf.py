"""The reference a reader trusts next to every victim's accuracy: TF-IDF + logistic regression (scikit-learn).

A leakage figure of a classifier that learned nothing means nothing; this reference, trained on
the same train/eval split as the victims, says how good a released classifier of this task
should be, and the majority class says what nothing is.
"""

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits


def reference_accuracy(train_texts: list[str], train_labels: list[int], eval_texts: list[str],
                       eval_labels: list[int]) -> dict:
    """Eval accuracy of TF-IDF (words and bigrams) + logistic regression, and of always answering the majority
    class of the training labels."""
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
    x_train = vectorizer.fit_transform(train_texts)
    with threadpool_limits(1):
        model = LogisticRegression(C=10.0, max_iter=2000).fit(x_train, train_labels)
    predicted = model.predict(vectorizer.transform(eval_texts))
    majority = np.bincount(train_labels).argmax()
    return {"tfidf_logistic": float(np.mean(predicted == np.asarray(eval_labels))),
            "majority_class": float(np.mean(np.asarray(eval_labels) == majority)),
            "method": "TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True) + LogisticRegression(C=10)"}
