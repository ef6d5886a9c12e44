"""Derived clinical variables and phenotype checks (hand-computed expectations)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bids_dfc.errors import InputError
from bids_dfc.stats import phenotype as ph


def test_relief_and_responder():
    rel = ph.relief_percent([8, 6, 7, 0, np.nan], [4, 6, 5.6, 2, 3])
    np.testing.assert_allclose(rel, [50.0, 0.0, 20.0, np.nan, np.nan])
    np.testing.assert_array_equal(ph.responder(rel, threshold=20.0),
                                  [1.0, 0.0, 1.0, np.nan, np.nan])
    np.testing.assert_array_equal(ph.responder(rel, threshold=30.0),  # the study's threshold
                                  [1.0, 0.0, 0.0, np.nan, np.nan])


def test_tsp_peak_change_from_first():
    ratings = np.array([[2.0, 3, 6, 5], [4, 3, 2, 1], [3, np.nan, 4, 4], [0, 1, 2, 3]])
    np.testing.assert_allclose(ph.tsp_percent(ratings), [200.0, 0.0, np.nan, np.nan])


def test_expand_columns_glob_natural_order_and_errors():
    cols = ["participant_id", "tsp_10", "tsp_2", "tsp_1", "age"]
    assert ph.expand_columns("tsp_*", cols) == ["tsp_1", "tsp_2", "tsp_10"]
    assert ph.expand_columns(["tsp_2", "tsp_1"], cols) == ["tsp_2", "tsp_1"]
    with pytest.raises(InputError, match="matches no column; available columns: participant"):
        ph.expand_columns("heat_*", cols)
    with pytest.raises(InputError, match=r"'tsp_3' not found.*available columns"):
        ph.expand_columns(["tsp_1", "tsp_3"], cols)


def test_coerce_numeric_names_row_and_column():
    frame = pd.DataFrame({"participant_id": ["sub-01", "sub-02", "sub-03"],
                          "pain_pre": ["7", "n/a", "eight"], "_line": [2, 3, 4]})
    frame["pain_pre"] = frame["pain_pre"].replace("n/a", np.nan)
    with pytest.raises(InputError, match=r"pain.tsv, line 4 \(participant_id sub-03\), "
                                         r"column 'pain_pre': value 'eight' is not a number"):
        ph.coerce_numeric(frame, ["pain_pre"], sources={"pain_pre": "phenotype/pain.tsv"})
    ok = ph.coerce_numeric(frame.iloc[:2], ["pain_pre"])
    assert ok["pain_pre"].dtype == float and np.isnan(ok["pain_pre"].iloc[1])
