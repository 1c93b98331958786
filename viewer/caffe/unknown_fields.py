"""Every field of a prototxt that Caffe's schema lacks, with the nearest field it has.

Real Caffe refuses a prototxt with an unknown field ("no field named stide"); protobuf's
parser stops at the first one. Reading the text once against the schema finds them all, so a
user with three typos fixes them in one go, each named by line, layer and the field they
probably meant (`difflib`): a `stide: 2` that is skipped leaves conv1 at stride 1, and a net
that runs, but not as its author meant.
"""
from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

from google.protobuf.descriptor import Descriptor, FieldDescriptor

# One token of protobuf's text format: blank, comment, quoted string, punctuation, or a word
# (a field name, number or enum value).
_TOKEN = re.compile(r"""\s+|#[^\n]*|"(?:[^"\\\n]|\\.)*"?|'(?:[^'\\\n]|\\.)*'?|[{}<>\[\]:,;]|"""
                    r"""[^\s{}<>\[\]:,;"'#]+""")
_OPEN, _CLOSE = "{<", "}>"
_LAYER_FIELDS = ("layer", "layers")


@dataclass(frozen=True)
class UnknownField:
    """A field name the message it stands in does not have."""

    line: int
    message: str                # the message type, e.g. ConvolutionParameter
    name: str
    layer: str | None           # the name of the layer block it is in
    nearest: str | None         # the known field of that message spelled most like it

    def describe(self) -> str:
        where = f"line {self.line}" + (f" (in layer '{self.layer}')" if self.layer else "")
        guess = f" (did you mean {self.nearest}?)" if self.nearest else ""
        return f"{where}: no field named '{self.name}' in {self.message}{guess}"


def nearest_field(name: str, message: Descriptor) -> str | None:
    close = difflib.get_close_matches(name, list(message.fields_by_name), n=1, cutoff=0.6)
    return close[0] if close else None


def _tokens(text: str) -> list[tuple[str, int]]:
    """(token, 1-based line) without blanks and comments."""
    found, line = [], 1
    for match in _TOKEN.finditer(text):
        token = match.group()
        if not token.isspace() and not token.startswith("#"):
            found.append((token, line))
        line += token.count("\n")
    return found


def find_unknown_fields(text: str, root: Descriptor) -> list[UnknownField]:
    """Each unknown field of `text` read as a `root` message, in the order of the file.

    A block under an unknown field is skipped whole (its fields cannot be known either). Text
    that is not well formed ends the search where it breaks: the parser names that error.
    """
    tokens = _tokens(text)
    stack: list[tuple[Descriptor | None, int | None]] = [(root, None)]   # (message, layer)
    layer_names: dict[int, str] = {}
    unknown: list[tuple[int, str, str, int | None, str | None]] = []
    k, layers = 0, 0
    while k < len(tokens):
        token, line = tokens[k]
        message, layer = stack[-1]
        if token in _CLOSE:
            if len(stack) == 1:
                break
            stack.pop()
            k += 1
            continue
        if token in ",;":
            k += 1
            continue
        field = message.fields_by_name.get(token) if message is not None else None
        if message is not None and field is None:
            unknown.append((line, message.name, token, layer, nearest_field(token, message)))
        k += 1
        if k < len(tokens) and tokens[k][0] == ":":
            k += 1
        if k >= len(tokens):
            break
        if tokens[k][0] in _OPEN:
            child = field.message_type if field is not None and \
                field.type == FieldDescriptor.TYPE_MESSAGE else None
            if message is root and token in _LAYER_FIELDS:
                layers += 1
                layer = layers
            stack.append((child, layer))
            k += 1
            continue
        k = _skip_value(tokens, k)
        if token == "name" and layer is not None and len(stack) == 2 and \
                tokens[k - 1][0][:1] in "\"'":
            layer_names.setdefault(layer, tokens[k - 1][0][1:-1])
    return [UnknownField(line, kind, name, layer_names.get(layer) if layer else None, guess)
            for line, kind, name, layer, guess in unknown]


def _skip_value(tokens: list[tuple[str, int]], k: int) -> int:
    """Past one scalar value (adjacent strings join), or a [list] of them."""
    if tokens[k][0] == "[":
        depth = 0
        while k < len(tokens):
            depth += tokens[k][0] in "[{<"
            depth -= tokens[k][0] in "]}>"
            k += 1
            if depth == 0:
                break
        return k
    k += 1
    while k < len(tokens) and tokens[k - 1][0][:1] in "\"'" and tokens[k][0][:1] in "\"'":
        k += 1
    return k


def unknown_fields_text(source: str, unknown: list[UnknownField]) -> str:
    """One line for the error: the file, then each unknown field with its line and layer."""
    if len(unknown) == 1:
        return f"{source} {unknown[0].describe()}"
    return (f"{source}: {len(unknown)} fields Caffe does not know: " +
            "; ".join(u.describe() for u in unknown))
