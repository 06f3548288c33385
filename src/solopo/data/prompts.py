"""The QA prompt used for data construction, RULER and LongBench v1 (SoLoPO Fig. 6).

Fig. 6's exact wording could not be recovered from the paper. This reconstruction keeps RULER's QA template
opening instruction and document format, states the instruction once (RULER repeats it;
at the tiny preset's budgets the repetition would be a third of the short context) and replaces "only give me the
answer" by a chain-of-thought request ending in SoLoPO's answer format, "The answer is: X"
(Table 6), which `solopo.eval.metrics.extract_answer` parses.
"""
from __future__ import annotations

QA_COT_TEMPLATE = (
    "Answer the question based on the given documents. Think step by step, "
    'then end with "The answer is: " followed by the answer.\n\n'
    "{context}\n\nQuestion: {question}"
)

DOCUMENT_TEMPLATE = "Document {i}:\n{text}"


def format_document(title: str, text: str) -> str:
    """A MuSiQue paragraph as one document string, Hotpot/RULER style: title, newline, text."""
    return f"{title}\n{text}" if title else text


def format_context(documents: list[str]) -> str:
    """RULER context: `Document {i}:` (1-based) blocks joined by blank lines."""
    return "\n\n".join(DOCUMENT_TEMPLATE.format(i=i, text=d) for i, d in enumerate(documents, 1))


def qa_prompt(context: str, question: str) -> str:
    return QA_COT_TEMPLATE.format(context=context, question=question)


_CONTEXT_START = QA_COT_TEMPLATE.index("{context}")
_QUESTION_MARK = "\n\nQuestion: "


def context_span(prompt: str) -> tuple[int, int] | None:
    """(start, end) character offsets of the documents inside a `qa_prompt` string, or None when
    `prompt` is not one. Used to truncate inside the documents, never the instruction or question."""
    head = QA_COT_TEMPLATE[:_CONTEXT_START]
    end = prompt.rfind(_QUESTION_MARK)
    if not prompt.startswith(head) or end < len(head):
        return None
    return len(head), end
