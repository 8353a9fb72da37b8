"""The ledger: one row for every input participant, sample, column, feature and variant.

``outcome`` is ``kept`` or ``dropped``; ``reason`` is a short code (for kept rows
an optional note such as ``merged_concordant_duplicate``), ``detail`` a sentence.
Ingest writes the ledger of the inputs; every later stage writes one with the
same columns for what it leaves out, built the same way: a :class:`Ledger`,
rows added with :meth:`Ledger.kept` and :meth:`Ledger.dropped`, then
:meth:`Ledger.frame`.
"""

from __future__ import annotations

import pandas as pd

COLUMNS = ["entity", "id", "file", "outcome", "reason", "detail"]
#: The order of entities in a ledger file (others, such as ``site``, come last).
ENTITIES = ["participant", "stool_sample", "table_column", "blood_sample", "genotype_column",
            "feature", "taxonomy_row", "variant", "variant_annotation"]


class Ledger:
    """Ledger rows in the order they are added (input order), so the file is deterministic.

    Examples
    --------
    >>> ledger = Ledger()
    >>> ledger.dropped("feature", ["g__x"], reason="below_min_prevalence", detail="differential: ...")
    >>> ledger.frame().shape
    (1, 6)
    """

    def __init__(self) -> None:
        self.rows: list[tuple] = []

    def kept(self, entity, ids, file="", reason="", detail="") -> None:
        """One ``kept`` row per id (``reason`` is an optional note)."""
        self.rows.extend((entity, i, str(file), "kept", reason, detail) for i in ids)

    def dropped(self, entity, ids, file="", reason="", detail="") -> None:
        """One ``dropped`` row per id, with the reason code and a sentence."""
        self.rows.extend((entity, i, str(file), "dropped", reason, detail) for i in ids)

    def extend(self, rows: "Ledger | pd.DataFrame") -> None:
        """Append the rows of another ledger (or of a ledger frame), in their order."""
        if isinstance(rows, Ledger):
            self.rows.extend(rows.rows)
        else:
            self.rows.extend(tuple(r) for r in rows[COLUMNS].itertuples(index=False))

    def __len__(self) -> int:
        return len(self.rows)

    def frame(self) -> pd.DataFrame:
        """The ledger grouped by entity (:data:`ENTITIES` order), input order within each."""
        frame = pd.DataFrame(self.rows, columns=COLUMNS)
        order = {e: i for i, e in enumerate(ENTITIES)}
        rank = frame["entity"].map(lambda e: order.get(e, len(order)))
        return frame.iloc[rank.argsort(kind="stable")].reset_index(drop=True)
