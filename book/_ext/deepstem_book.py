"""Sphinx extension of the DeepSTEM book: a chapter's hidden solution cells are labelled "Solution".

Chapters hide the code of an exercise's solution with the ``hide-cell`` tag; myst-nb
labels every such toggle "Show code cell content". In a section titled "Exercises"
the toggle reads "Solution" ("Hide solution" when open) instead; hidden cells
elsewhere keep myst-nb's label. Loaded from ``book/_config.yml``
(``sphinx.local_extensions``).
"""

from __future__ import annotations

from docutils import nodes
from myst_nb.sphinx_ import HideCodeCellNode
from sphinx.transforms.post_transforms import SphinxPostTransform

#: Title of the section whose hidden cells are solutions.
EXERCISES = "exercises"
SHOW, HIDE = "Solution", "Hide solution"


def _section_title(node: nodes.Node) -> str:
    while node is not None and not isinstance(node, nodes.section):
        node = node.parent
    if node is None or not node.children or not isinstance(node.children[0], nodes.title):
        return ""
    return node.children[0].astext().strip().lower()


class LabelSolutions(SphinxPostTransform):
    """Relabel the whole-cell toggles (``hide-cell``) of the Exercises sections."""

    default_priority = 200  # after myst-nb's HideInputCells (199) has made the toggles
    formats = ("html",)

    def run(self, **kwargs) -> None:
        # myst-nb puts a whole hidden cell into its toggle by assigning the cell's children, which leaves
        # the toggle without a parent: find the toggles through their cells
        for cell in list(self.document.findall(nodes.container)):
            if cell.get("nb_element") != "cell_code" or _section_title(cell) != EXERCISES:
                continue
            for node in cell.children:
                whole_cell = isinstance(node, HideCodeCellNode) and "above-input" in node["classes"]
                if whole_cell and node["prompt_show"].endswith("content"):
                    node["prompt_show"], node["prompt_hide"] = SHOW, HIDE


def setup(app):
    app.add_post_transform(LabelSolutions)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
