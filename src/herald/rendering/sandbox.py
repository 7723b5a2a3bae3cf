"""The template sandbox: Jinja's immutable sandbox, with a bound on what one operation builds.

Jinja's ``ImmutableSandboxedEnvironment`` already refuses attribute walks
(``''.__class__.__mro__``, ``cycler.__init__.__globals__``), ``str.format`` fields that walk
attributes (``'{0.__class__}'.format(x)``), changes to lists and dicts, and ranges of more
than 100,000 items. A template that was edited carelessly, or one that multiplies by a value
of the reminder's (untrusted) ``data``, can still ask for gigabytes in one step:
``'x' * 10**9``, ``9 ** 999999999``, ``'%0999999999d' % 1``, ``'{:>999999999}'.format(1)``,
``'a'.center(10**9)``, ``'x'|indent(10**9)``, ``sep.join(items)``, ``s.replace('', t)``, and
doubling a string with ``~`` or ``+`` in a loop.
:class:`BoundedSandbox` refuses each of those with a ``SecurityError`` before the memory or
time is spent: no operation may build more than :data:`MAX_SIZE` characters or items, the
same bound Jinja puts on ``range``.

What no bound per operation can stop is a template that loops over loops; templates are
reviewed files, and ``herald templates check`` renders every one of them.
"""

from __future__ import annotations

import re
import types
from collections.abc import Callable, Iterable
from functools import update_wrapper
from string import Formatter
from typing import Any, TypeGuard

from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import MAX_RANGE, ImmutableSandboxedEnvironment

MAX_SIZE = MAX_RANGE
"""Most characters or items one template operation may build."""
MAX_POWER_BITS = 4096
"""Largest integer ``**`` may build, in bits (about 1,200 decimal digits)."""
MAX_INDENT = 100
"""Widest indent ``tojson`` may use (each level of nesting repeats it on every line)."""

_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[#0 +-]*(\*|\d+)?(?:\.(\*|\d+))?")
_NUMBER = re.compile(r"\d+")
_PADDING_METHODS = frozenset({"center", "ljust", "rjust", "zfill"})


def _refuse(what: str, size: int | str) -> SecurityError:
    return SecurityError(f"{what} would build {size} characters or items; the limit is {MAX_SIZE}")


def measure(value: Any, budget: int = MAX_SIZE) -> int:
    """Characters and items in ``value`` (strings, lists, tuples, dicts, nested), counted up
    to just past ``budget``: a value already too big is not walked to its end."""
    total = 0
    stack = [value]
    while stack and total <= budget:
        item = stack.pop()
        if isinstance(item, str):
            total += len(item)
        elif isinstance(item, list | tuple):
            total += len(item)
            stack.extend(item)
        elif isinstance(item, dict):
            total += len(item)
            stack.extend(item.keys())
            stack.extend(item.values())
    return total


def _is_count(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_repeat(left: Any, right: Any) -> None:
    for sequence, times in ((left, right), (right, left)):
        if isinstance(sequence, str | list | tuple) and _is_count(times) and times > 0:
            size = measure(sequence, MAX_SIZE // times + 1) * times
            if size > MAX_SIZE:
                raise _refuse("'*'", size)


def _check_power(base: Any, exponent: Any) -> None:
    if _is_count(base) and _is_count(exponent) and abs(base) > 1 and exponent > 0:
        bits = abs(base).bit_length() * exponent
        if bits > MAX_POWER_BITS:
            raise SecurityError(f"'**' would build a {bits}-bit number; the limit is {MAX_POWER_BITS} bits")


def check_percent_format(template: str) -> None:
    """Refuse a ``%``-format string with a width or precision over :data:`MAX_SIZE`, or one
    taken from the arguments (``*``)."""
    for match in _PERCENT_SPEC.finditer(template):
        for number in match.groups():
            if number == "*":
                raise SecurityError("a '%' format may not take its width or precision from '*'")
            if number is not None and int(number) > MAX_SIZE:
                raise _refuse("a '%' format width or precision", number)


def check_brace_format(template: str) -> None:
    """Refuse a ``str.format`` string with a width or precision over :data:`MAX_SIZE`, or one
    taken from the arguments (a nested ``{}`` in the format spec)."""
    try:
        fields = list(Formatter().parse(template))
    except ValueError:
        return  # not a format string: str.format raises its own error
    for _, _, spec, _ in fields:
        if not spec:
            continue
        if "{" in spec:
            raise SecurityError("a format spec may not take its width or precision from '{}'")
        for number in _NUMBER.findall(spec):
            if int(number) > MAX_SIZE:
                raise _refuse("a format width or precision", number)


def _check_join(separator: str, items: list[Any]) -> None:
    size = measure(items) + len(separator) * max(len(items) - 1, 0)
    if size > MAX_SIZE:
        raise _refuse("join", size)


def _check_replace(text: str, old: str, new: str, count: int | None = None) -> None:
    hits = text.count(old) if old else len(text) + 1
    if count is not None and count >= 0:
        hits = min(hits, count)
    size = len(text) + hits * (len(new) - len(old))
    if size > MAX_SIZE:
        raise _refuse("replace", size)


def _check_str_method(method: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
    """Check a call of a ``str`` method; returns the arguments to call it with."""
    text = method.__self__
    name = method.__name__
    if name in _PADDING_METHODS and args and _is_count(args[0]) and args[0] > MAX_SIZE:
        raise _refuse(f"str.{name}", args[0])
    if name == "expandtabs":
        size = args[0] if args else kwargs.get("tabsize", 8)
        if _is_count(size) and size * text.count("\t") + len(text) > MAX_SIZE:
            raise _refuse("str.expandtabs", size * text.count("\t"))
    if name == "join" and args:
        items = args[0] if isinstance(args[0], list) else list(args[0])
        _check_join(text, items)
        args = (items, *args[1:])
    if name == "replace" and len(args) >= 2 and isinstance(args[0], str) and isinstance(args[1], str):
        count = args[2] if len(args) > 2 and _is_count(args[2]) else kwargs.get("count")
        _check_replace(text, args[0], args[1], count if _is_count(count) else None)
    if name == "translate" and args and isinstance(args[0], dict):
        longest = max((len(v) for v in args[0].values() if isinstance(v, str)), default=1)
        if len(text) * longest > MAX_SIZE:
            raise _refuse("str.translate", len(text) * longest)
    return args


def _bounded(check: Callable[..., None], function: Callable[..., Any]) -> Callable[..., Any]:
    """``function`` (a Jinja filter) with ``check`` run on its value and arguments first.

    A filter that asks Jinja for its context, evaluation context or environment (its
    ``jinja_pass_arg``) gets that first; ``check`` sees only the value and the arguments.
    """
    skip = 1 if getattr(function, "jinja_pass_arg", None) is not None else 0

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        check(*args[skip:], **kwargs)
        return function(*args, **kwargs)

    return update_wrapper(wrapper, function)


def _width_at(position: int, name: str) -> Callable[..., None]:
    def check(*args: Any, **kwargs: Any) -> None:
        value = args[position] if len(args) > position else kwargs.get(name)
        if _is_count(value) and value > MAX_SIZE:
            raise _refuse(f"the filter's {name}", value)

    return check


def _check_indent(text: Any, width: Any = 4, *_: Any, **kwargs: Any) -> None:
    width = kwargs.get("width", width)
    unit = width if _is_count(width) else len(str(width))
    if unit * (str(text).count("\n") + 1) > MAX_SIZE:
        raise _refuse("indent", unit * (str(text).count("\n") + 1))


def _check_format_filter(text: Any, *_: Any, **__: Any) -> None:
    check_percent_format(str(text))


def _check_wordwrap(
    text: Any, width: Any = 79, _breaks: Any = True, wrapstring: Any = None, *_: Any, **kwargs: Any
) -> None:
    width = kwargs.get("width", width)
    glue = kwargs.get("wrapstring", wrapstring)
    lines = len(str(text)) // max(width, 1) + 1 if _is_count(width) else 1
    size = len(str(text)) + lines * len(str(glue if glue is not None else "\n"))
    if size > MAX_SIZE:
        raise _refuse("wordwrap", size)


def _check_tojson(_value: Any, indent: Any = None, **kwargs: Any) -> None:
    indent = kwargs.get("indent", indent)
    if _is_count(indent) and indent > MAX_INDENT:
        raise SecurityError(f"tojson's indent is {indent}; the limit is {MAX_INDENT}")


def _bounded_join(function: Callable[..., Any]) -> Callable[..., Any]:
    """The ``join`` filter (which takes the evaluation context first), bounded; an iterator is
    read into a list once, so the check and the filter see the same items."""

    def wrapper(eval_ctx: Any, value: Iterable[Any], d: str = "", *args: Any, **kwargs: Any) -> Any:
        items = value if isinstance(value, str | list | tuple) else list(value)
        _check_join(str(d), list(items))
        return function(eval_ctx, items, d, *args, **kwargs)

    return update_wrapper(wrapper, function)


def _check_replace_filter(s: Any, old: Any, new: Any, count: Any = None) -> None:
    _check_replace(str(s), str(old), str(new), count if _is_count(count) else None)


def _check_add(left: Any, right: Any) -> None:
    if isinstance(left, str | list | tuple) and isinstance(right, str | list | tuple):
        size = measure(left) + measure(right)
        if size > MAX_SIZE:
            raise _refuse("'+'", size)


class _BoundedCodeGenerator(CodeGenerator):
    """Jinja's code generator with the result of every ``~`` measured: Jinja compiles the
    concatenation to a plain join that no sandbox hook sees."""

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.checked_concat(")
        super().visit_Concat(node, frame)
        self.write(")")


class BoundedSandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox with every size-building operation bounded by :data:`MAX_SIZE`.

    Intercepts ``*``, ``**``, ``%`` and ``+`` (intercepted operators are also never folded at
    compile time, so ``{{ 9 ** 999999999 }}`` is refused when rendered, not computed when
    loaded), measures what each ``~`` built (``{% set a = a ~ a %}`` in a loop doubles a string
    each time: it is refused once past the bound, having built at most twice it),
    the ``str`` methods that pad, join, replace, translate and format, and the filters
    ``center``, ``indent``, ``batch``, ``slice``, ``format``, ``join``, ``replace``,
    ``wordwrap`` and ``tojson``.
    """

    intercepted_binops = frozenset({"*", "**", "%", "+"})
    code_generator_class = _BoundedCodeGenerator

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        checks: dict[str, Callable[..., None]] = {
            "center": _width_at(1, "width"),
            "indent": _check_indent,
            "batch": _width_at(1, "linecount"),
            "slice": _width_at(1, "slices"),
            "format": _check_format_filter,
            "replace": _check_replace_filter,
            "wordwrap": _check_wordwrap,
            "tojson": _check_tojson,
        }
        for name, check in checks.items():
            self.filters[name] = _bounded(check, self.filters[name])
        self.filters["join"] = _bounded_join(self.filters["join"])

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        """Run an intercepted ``*``, ``**`` or ``%`` after checking what it would build."""
        if operator == "*":
            _check_repeat(left, right)
        elif operator == "**":
            _check_power(left, right)
        elif operator == "%" and isinstance(left, str):
            check_percent_format(left)
        elif operator == "+":
            _check_add(left, right)
        return super().call_binop(context, operator, left, right)

    def checked_concat(self, value: str) -> str:
        """What a ``~`` built, refused past :data:`MAX_SIZE` characters."""
        if len(value) > MAX_SIZE:
            raise _refuse("'~'", len(value))
        return value

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        """Call ``__obj`` from a template, checking the ``str`` methods that build text."""
        method = isinstance(__obj, types.BuiltinMethodType | types.MethodType)
        if method and isinstance(getattr(__obj, "__self__", None), str):
            args = _check_str_method(__obj, args, kwargs)
        return super().call(__context, __obj, *args, **kwargs)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        """Jinja's sandboxed ``str.format`` / ``format_map``, refused for huge widths."""
        wrapped = super().wrap_str_format(value)
        if wrapped is not None:
            check_brace_format(value.__self__)
        return wrapped
