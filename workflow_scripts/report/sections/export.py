"""Exports for QIIME 2, phyloseq and MaAsLin users (``export/*``)."""

from __future__ import annotations

from . import Section, not_run

ANCHOR, TITLE = "exports", "Exports for other tools"
TOOLS = (("qiime2", "QIIME 2: sample metadata, taxonomy and BIOM tables with metadata embedded"),
         ("phyloseq", "phyloseq (R): OTU table, tax table, sample data and tree, with the two R lines that load them"),
         ("maaslin", "MaAsLin: each differential method in MaAsLin 2's all_results.tsv layout"))


def section(results) -> Section:
    readme = results.path("export/README.md")
    if readme is None:
        return not_run(ANCHOR, TITLE, "The export stage did not run.")
    items = ""
    for tool, words in TOOLS:
        files = results.glob(f"export/{tool}/*") + results.glob(f"export/{tool}/*/*")
        if files:
            items += f"<li>{words}: " + ", ".join(results.link(f) for f in sorted(files)) + "</li>"
    body = (f"<p>The harmonised cohort and the results reshaped for the tools people already use; "
            f"{results.link('export/README.md')} says what each file is and how to load it.</p><ul>{items}</ul>"
            "<p class=\"note\">Nothing is recomputed; each MaAsLin <code>coef</code> stays on its method's own "
            "scale.</p>")
    return Section(ANCHOR, TITLE, body)
