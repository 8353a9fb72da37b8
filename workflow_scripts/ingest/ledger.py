"""The ledger: one row for every input participant, sample, column, feature and variant.

``outcome`` is ``kept`` or ``dropped``; ``reason`` is a short code (for kept rows
an optional note such as ``merged_concordant_duplicate``), ``detail`` a sentence.
Later stages write ledgers with the same columns for what they exclude.
"""

from __future__ import annotations

import pandas as pd

COLUMNS = ["entity", "id", "file", "outcome", "reason", "detail"]
ENTITIES = ["participant", "stool_sample", "table_column", "blood_sample", "genotype_column",
            "feature", "taxonomy_row", "variant", "variant_annotation"]


class Ledger:
    """Rows in the order they are added (input order), so the file is deterministic."""

    def __init__(self) -> None:
        self.rows: list[tuple] = []

    def kept(self, entity, ids, file, reason="", detail="") -> None:
        self.rows.extend((entity, i, str(file), "kept", reason, detail) for i in ids)

    def dropped(self, entity, ids, file, reason, detail="") -> None:
        self.rows.extend((entity, i, str(file), "dropped", reason, detail) for i in ids)

    def frame(self) -> pd.DataFrame:
        """The ledger grouped by entity (participants first), input order within each."""
        frame = pd.DataFrame(self.rows, columns=COLUMNS)
        order = {e: i for i, e in enumerate(ENTITIES)}
        rank = frame["entity"].map(lambda e: order.get(e, len(order)))
        return frame.iloc[rank.argsort(kind="stable")].reset_index(drop=True)
