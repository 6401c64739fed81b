"""Mutation testing of the config contract and the other pure-logic modules: does a wrong value fail a test?

Each mutant changes one thing in one module — a comparison (< ↔ <=, == ↔ !=, in ↔ not in), a number (±1, ×2, ÷2),
a boolean, `and` ↔ `or`, a dropped `not`, a pydantic bound (ge ↔ gt, le ↔ lt), a regular expression (a quantifier's
bound ±1, a dropped anchor, `+` → `*`, a character-class range removed), a deleted `raise` — which mutmut and
cosmic-ray leave alone in class bodies and patterns, where this code keeps its rules. And the values rules key on: a
string that is a Literal choice, a dict key, a member of a collection, a comparison's operand or a startswith/endswith
argument gets a character more; one element of a constant set, list or tuple is dropped; a string default changes;
startswith ↔ endswith, min ↔ max, any ↔ all; a `.lower()`/`.upper()`/`.casefold()` is dropped; a slice loses a
bound; a validator is removed (its decorator, or its AfterValidator/BeforeValidator/matching in an Annotated); an
early `return` inside an `if` is removed. The module's tests run against
each mutant in a scratch copy of the repository; a mutant that fails them is killed, one that passes survives.
Equivalent mutants (no behaviour can tell them apart) are listed, with the reason, in tools/mutation-equivalent.txt.

    .venv/bin/python -m tools.mutation [--module settings/values.py] [--sample 100 --seed 1] [--jobs 2]
                                       [--edge-tests-only] [--fail-under 100]

Prints a table per module and every survivor; exits 0 (a report, like bench/: too slow for every CI run), or 1 with
--fail-under when a module scores below it. `make test` runs a fixed sample of the settings' mutants against their
edge tests only (tests/test_mutation.py), so a new rule without the tests that catch a wrong value fails CI.
"""

from __future__ import annotations

import argparse
import ast
import concurrent.futures
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EQUIVALENT_FILE = ROOT / "tools" / "mutation-equivalent.txt"
# Module → the tests that guard it (fast ones: no renders of every stack where a unit test exists). The first is the
# module's edge tests (bounds, patterns, defaults, messages), which --edge-tests-only runs alone.
TARGETS = {
    "settings/values.py": ["tests/test_values.py", "tests/test_settings.py"],
    "settings/cron.py": ["tests/test_cron.py", "tests/test_values.py", "tests/test_settings.py", "tests/test_postgres.py"],
    "settings/rules.py": ["tests/test_rules.py", "tests/test_settings.py", "tests/test_release.py"],
    "settings/release.py": ["tests/test_release_settings.py", "tests/test_release.py"],
    "settings/routing.py": ["tests/test_release_settings.py", "tests/test_release.py"],
    "policy/guardrails/rules.py": ["tests/test_policy.py"],
    "policy/guardrails/contract.py": ["tests/test_values.py", "tests/test_settings.py", "tests/test_policy.py"],
    "components/routes.py": ["tests/test_release.py"],
    "components/gateway.py": ["tests/test_release.py"],
    "settings/postgres.py": ["tests/test_postgres_settings.py", "tests/test_settings.py", "tests/test_postgres.py"],
    "settings/monitoring.py": ["tests/test_monitoring_settings.py", "tests/test_settings.py", "tests/monitoring/test_alerting.py"],
    "settings/slo.py": ["tests/test_slo_settings.py", "tests/monitoring/test_slo_rules.py"],
    "settings/platform.py": ["tests/test_platform_settings.py", "tests/test_settings.py"],
    "settings/loading.py": ["tests/test_loading.py", "tests/test_settings.py"],
    "settings/app_config.py": ["tests/test_app_config_settings.py", "tests/test_app_config.py"],
    "components/slo_rules.py": ["tests/monitoring/test_slo_rules.py"],
    "components/alerting.py": ["tests/test_alerting_config.py", "tests/monitoring/test_alerting.py", "tests/test_monitoring.py"],
    "components/app_config.py": ["tests/test_app_config.py"],
    "components/network_policies.py": ["tests/test_network_policies.py"],
    # The generated-file builders: pgbackrest.conf, redis.conf and its pod, the DingTalk bridge's config.
    "components/pgbackrest.py": ["tests/test_postgres.py", "tests/test_backups.py"],
    "components/redis.py": ["tests/test_redis.py"],
    "components/dingtalk_bridge.py": ["tests/test_monitoring.py"],
}
CALL_SWAPS = {"startswith": "endswith", "endswith": "startswith", "min": "max", "max": "min", "any": "all", "all": "any"}
CASE_FOLDS = {"lower", "upper", "casefold"}
VALIDATORS = {"model_validator", "field_validator", "AfterValidator", "BeforeValidator", "matching"}
COMPARE_SWAPS = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq, ast.NotEq: ast.Eq,
                 ast.In: ast.NotIn, ast.NotIn: ast.In, ast.Is: ast.IsNot, ast.IsNot: ast.Is}
BOUND_SWAPS = {"ge": "gt", "gt": "ge", "le": "lt", "lt": "le"}
REGEX_CALLS = {"compile", "fullmatch", "match", "search"}


@dataclass(frozen=True)
class Mutant:
    module: str
    line: int
    column: int
    what: str
    source: str

    @property
    def id(self) -> str:
        return f"{self.module}:{self.line}:{self.column}: {self.what}"


def regex_mutations(pattern: str) -> list[tuple[str, str]]:
    """(description, mutated pattern) for one regular expression; only mutants that still compile."""
    found = []
    for match in re.finditer(r"\{(\d+)(?:,(\d+))?\}", pattern):
        low, high = match.group(1), match.group(2)
        for new, what in ((f"{{{low},{int(high) + 1}}}" if high else f"{{{int(low) + 1}}}", "bound +1"),
                          (f"{{{low},{int(high) - 1}}}" if high and int(high) > int(low) else None, "bound -1")):
            if new:
                found.append((f"regex {match.group(0)} at {match.start()} → {new} ({what})",
                              pattern[:match.start()] + new + pattern[match.end():]))
    if pattern.startswith("^"):
        found.append(("regex without ^", pattern[1:]))
    if pattern.endswith("$") and not pattern.endswith("\\$"):
        found.append(("regex without $", pattern[:-1]))
    for match in re.finditer(r"(?<!\\)\+", pattern):
        found.append((f"regex + → * at {match.start()}", pattern[:match.start()] + "*" + pattern[match.end():]))
    # Every range of every class in turn (a class with nothing else in it would become empty).
    for klass in re.finditer(r"(?<!\\)\[([^\]]*)\]", pattern):
        body = klass.group(1)
        for span in re.finditer(r"[A-Za-z0-9]-[A-Za-z0-9]", body):
            rest = body[:span.start()] + body[span.end():]
            if rest:
                found.append((f"regex class at {klass.start()} without {span.group(0)}",
                              pattern[:klass.start()] + f"[{rest}]" + pattern[klass.end():]))
    valid = []
    for what, mutated in found:
        try:
            re.compile(mutated)
            valid.append((what, mutated))
        except re.error:
            pass
    return valid


def _callee(node: ast.AST) -> str:
    if isinstance(node, ast.Call):
        node = node.func
    return node.attr if isinstance(node, ast.Attribute) else getattr(node, "id", "")


class _Finder(ast.NodeVisitor):
    """Collects (node, description, replacement builder) for every mutation point."""

    def __init__(self):
        self.points: list[tuple[ast.AST, str, object]] = []
        self.regex_nodes: set[int] = set()
        # String constants that are values a rule keys on (not messages): Literal choices, dict keys, members of a
        # collection, operands of a comparison, startswith/endswith arguments, class-level defaults.
        self.value_strings: set[int] = set()
        self._class_depth = 0
        self._function_depth = 0
        self._records: set[int] = set()

    def _value_string(self, node: ast.AST):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            self.value_strings.add(id(node))

    def visit_ClassDef(self, node: ast.ClassDef):
        self._class_depth += 1
        self.generic_visit(node)
        self._class_depth -= 1

    def visit_FunctionDef(self, node: ast.FunctionDef):
        for decorator in node.decorator_list:
            if _callee(decorator) in VALIDATORS:
                self.points.append((decorator, f"validator {node.name} removed", ("undecorate", node)))
        self._function_depth += 1
        self.generic_visit(node)
        self._function_depth -= 1

    def visit_AnnAssign(self, node: ast.AnnAssign):
        # A field's default, changed: a string gets a character more (still a valid value where the type allows).
        if self._class_depth and not self._function_depth and isinstance(node.value, ast.Constant) \
                and isinstance(node.value.value, str):
            self.points.append((node.value, f"default {node.value.value!r} changed", ("const", node.value.value + "x")))
        self.generic_visit(node)

    def visit_Subscript(self, node: ast.Subscript):
        name = _callee(node.value)
        if name == "Literal":
            for element in node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]:
                self._value_string(element)
        if name == "Annotated" and isinstance(node.slice, ast.Tuple):
            for element in node.slice.elts[1:]:
                if _callee(element) in VALIDATORS:
                    self.points.append((element, f"Annotated without {_callee(element)}", ("unvalidate", node.slice)))
        if isinstance(node.slice, ast.Slice):
            for bound in ("lower", "upper"):
                if getattr(node.slice, bound) is not None:
                    self.points.append((node.slice, f"slice without its {bound} bound", ("unbound", bound)))
        self.generic_visit(node)

    def visit_Dict(self, node: ast.Dict):
        for key in node.keys:
            if key is not None:
                self._value_string(key)
        self.generic_visit(node)

    def _collection(self, node: ast.AST):
        # Only a collection of values: a tuple that pairs a message with a function holds no value a rule keys on.
        for element in node.elts:
            if isinstance(element, (ast.Tuple, ast.List, ast.Set)):
                self._records.add(id(element))
        if not all(isinstance(e, ast.Constant) for e in node.elts):
            return
        for element in node.elts:
            self._value_string(element)
        # A record inside a collection, like ("/v1", False), is unpacked by position: one field less is a crash,
        # not a wrong value.
        if len(node.elts) > 1 and id(node) not in self._records:
            for element in node.elts:
                self.points.append((element, f"{type(node).__name__.lower()} without {element.value!r}", ("drop", node)))

    def visit_Set(self, node: ast.Set):
        self._collection(node)
        self.generic_visit(node)

    def visit_List(self, node: ast.List):
        self._collection(node)
        self.generic_visit(node)

    def visit_Tuple(self, node: ast.Tuple):
        self._collection(node)
        self.generic_visit(node)

    def visit_If(self, node: ast.If):
        for statement in node.body:
            if isinstance(statement, ast.Return) and self._function_depth:
                self.points.append((statement, "early return removed", ("delete",)))
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call):
        name = _callee(node)
        if name in CALL_SWAPS:
            self.points.append((node, f"{name} → {CALL_SWAPS[name]}", ("call", CALL_SWAPS[name])))
        if name in CASE_FOLDS and isinstance(node.func, ast.Attribute) and not node.args:
            self.points.append((node, f".{name}() dropped", ("unfold",)))
        if name in ("startswith", "endswith"):
            for argument in node.args:
                self._value_string(argument)
                if isinstance(argument, ast.Tuple):
                    for element in argument.elts:
                        self._value_string(element)
        if name in REGEX_CALLS and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
            self.regex_nodes.add(id(node.args[0]))
        for keyword in node.keywords:
            if keyword.arg == "pattern" and isinstance(keyword.value, ast.Constant) and isinstance(keyword.value.value, str):
                self.regex_nodes.add(id(keyword.value))
            if name == "Field" and keyword.arg in BOUND_SWAPS:
                self.points.append((keyword, f"Field {keyword.arg}= → {BOUND_SWAPS[keyword.arg]}=", ("rename", BOUND_SWAPS[keyword.arg])))
        self.generic_visit(node)

    def visit_Compare(self, node: ast.Compare):
        for operand in (node.left, *node.comparators):
            self._value_string(operand)
        for i, op in enumerate(node.ops):
            swap = COMPARE_SWAPS.get(type(op))
            if swap:
                which = f" (comparison {i + 1} of {len(node.ops)})" if len(node.ops) > 1 else ""
                self.points.append((node, f"{type(op).__name__} → {swap.__name__}{which}", ("compare", i, swap)))
        self.generic_visit(node)

    def visit_BoolOp(self, node: ast.BoolOp):
        other = ast.Or if isinstance(node.op, ast.And) else ast.And
        self.points.append((node, f"{type(node.op).__name__} → {other.__name__}", ("boolop", other)))
        self.generic_visit(node)

    def visit_UnaryOp(self, node: ast.UnaryOp):
        if isinstance(node.op, ast.Not):
            self.points.append((node, "not dropped", ("unnot",)))
        self.generic_visit(node)

    def visit_Raise(self, node: ast.Raise):
        self.points.append((node, "raise deleted", ("delete",)))
        self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant):
        value = node.value
        if isinstance(value, bool):
            self.points.append((node, f"{value} → {not value}", ("const", not value)))
        elif isinstance(value, int):
            for new in (value + 1, value - 1):
                self.points.append((node, f"{value} → {new}", ("const", new)))
        elif isinstance(value, float):
            for new in ({value * 2, value / 2} if value else {1.0}):
                self.points.append((node, f"{value} → {new}", ("const", new)))
        elif isinstance(value, str) and id(node) in self.regex_nodes:
            for what, mutated in regex_mutations(value):
                self.points.append((node, what, ("const", mutated)))
        elif isinstance(value, str) and id(node) in self.value_strings:
            # Another value of the same kind: a character more (the rule no longer sees the value it names).
            self.points.append((node, f"string {value!r} → {value + 'x'!r}", ("const", value + "x")))


def mutants(module: str, text: str | None = None) -> list[Mutant]:
    """Every mutant of `module` (its text read from the repository unless given)."""
    text = (ROOT / module).read_text() if text is None else text
    tree = ast.parse(text)
    finder = _Finder()
    # A call records its pattern argument before its children are visited, so the pattern's constant is known then.
    finder.visit(tree)
    original = ast.unparse(tree)  # mutants are unparsed too: compare like with like, so a no-op is no mutant
    # A node's position in the walk names it in every fresh parse of the text (the walk order is the same).
    positions = {id(n): i for i, n in enumerate(ast.walk(tree))}
    result = []
    for node, what, change in finder.points:
        mutated = _apply(text, positions, node, change)
        if mutated is not None and mutated != original:
            result.append(Mutant(module, node.lineno, node.col_offset, what, mutated))
    return result


def _apply(text: str, positions: dict[int, int], target: ast.AST, change: tuple) -> str | None:
    """The module's source with one change, through the AST (comments are lost; only tests read the result).
    `positions` maps each original node (by id) to its place in the walk, where its counterpart in the copy is."""
    copy = ast.parse(text)
    walked = list(ast.walk(copy))

    def counterpart(original: ast.AST) -> ast.AST:
        return walked[positions[id(original)]]

    node = counterpart(target)
    kind = change[0]
    if kind == "rename":
        node.arg = change[1]
    elif kind == "compare":
        node.ops[change[1]] = change[2]()
    elif kind == "boolop":
        node.op = change[1]()
    elif kind == "const":
        node.value = change[1]
    elif kind == "call":
        if isinstance(node.func, ast.Attribute):
            node.func.attr = change[1]
        else:
            node.func.id = change[1]
    elif kind == "unbound":
        setattr(node, change[1], None)
    elif kind == "drop":
        container = counterpart(change[1])
        container.elts = [e for e in container.elts if e is not node]
    elif kind == "unvalidate":
        # In Annotated[...], metadata pydantic does not know (None) is ignored: the type stays, its check goes.
        container = counterpart(change[1])
        container.elts = [ast.Constant(None) if e is node else e for e in container.elts]
    elif kind == "undecorate":
        function = counterpart(change[1])
        function.decorator_list = [d for d in function.decorator_list if d is not node]
    elif kind in ("unnot", "delete", "unfold"):
        replacement = {"unnot": lambda: node.operand, "delete": ast.Pass, "unfold": lambda: node.func.value}[kind]()
        for parent in ast.walk(copy):
            for field, value in ast.iter_fields(parent):
                if value is node:
                    setattr(parent, field, replacement)
                elif isinstance(value, list) and any(v is node for v in value):
                    setattr(parent, field, [replacement if v is node else v for v in value])
    try:
        return ast.unparse(ast.fix_missing_locations(copy))
    except Exception:
        return None


def _scratch() -> Path:
    """A copy of the working tree's files, committed or not, minus what git ignores (the virtualenvs are used from
    where they are)."""
    base = Path(tempfile.mkdtemp(prefix="re-mutation-"))
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    files = [name for name in listed.decode().split("\0") if name]
    for name in files:
        source = ROOT / name
        if source.is_file():
            (base / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, base / name)
    return base


def _tests_pass(module: str, scratch: Path, timeout: float, edge_only: bool = False) -> bool:
    # The scratch copy holds tracked files only: the policy pack's virtualenv stays where make built it.
    # `make test` names it relative to the repository; the tests run elsewhere, so it is made absolute (not resolved:
    # a virtualenv's python is a symlink that must stay one).
    policy_python = os.path.abspath(ROOT / os.environ.get("POLICY_PYTHON", "policy/.venv/bin/python"))
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *TARGETS[module][:1 if edge_only else None]],
        cwd=scratch, capture_output=True, timeout=timeout,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "POLICY_PYTHON": policy_python},
    )
    # 1: a test failed. 2 with a collection error: the mutant breaks the import (a default that no longer validates,
    # say); the baseline run proved the tests import unmutated, so that is the mutant caught. Anything else (no tests
    # collected, pytest itself failing) is no verdict.
    if result.returncode == 2 and b"during collection" in result.stdout:
        return False
    if result.returncode not in (0, 1):
        raise RuntimeError(f"pytest exited {result.returncode} on {module}: {result.stdout.decode()[-500:]}")
    return result.returncode == 0


def _run(mutant: Mutant, scratch: Path, timeout: float, edge_only: bool) -> str:
    target = scratch / mutant.module
    original = target.read_text()
    target.write_text(mutant.source)
    try:
        return "survived" if _tests_pass(mutant.module, scratch, timeout, edge_only) else "killed"
    except subprocess.TimeoutExpired:
        return "timeout"  # reported apart: a hang may be the mutant's doing, or a loaded machine's
    finally:
        target.write_text(original)


def equivalents() -> dict[str, str]:
    found = {}
    if EQUIVALENT_FILE.exists():
        for line in EQUIVALENT_FILE.read_text().splitlines():
            if line.strip() and not line.startswith("#"):
                mutant_id, _, reason = line.partition(" | ")
                found[mutant_id.strip()] = reason.strip()
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--module", action="append", choices=sorted(TARGETS), help="only these modules (repeatable)")
    parser.add_argument("--sample", type=int, help="run a random sample of this many mutants per module")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--match", help="only mutants whose id contains this text (rerun survivors: 'regex class')")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--timeout", type=float, default=300)
    parser.add_argument("--edge-tests-only", action="store_true", help="run only each module's first (edge) test file")
    parser.add_argument("--fail-under", type=float, help="exit 1 when a module's score (percent) is below this")
    args = parser.parse_args()
    known = equivalents()
    rng = random.Random(args.seed)
    plan = []
    for module in args.module or sorted(TARGETS):
        found = [m for m in mutants(module) if not args.match or args.match in m.id]
        chosen = rng.sample(found, min(args.sample, len(found))) if args.sample else found
        plan += [(module, len(found), m) for m in chosen]
    scratches = [_scratch() for _ in range(args.jobs)]
    # The unmutated modules must pass their tests, or every mutant would count as killed.
    for module in sorted({module for module, _, _ in plan}):
        if not _tests_pass(module, scratches[0], args.timeout, args.edge_tests_only):
            raise SystemExit(f"the tests of {module} fail without any mutant: fix them first")
    started = time.monotonic()
    outcomes: dict[str, list[tuple[Mutant, str]]] = {}
    try:
        with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
            free = list(scratches)
            futures = {}
            pending = list(plan)
            while pending or futures:
                while pending and free:
                    module, _, mutant = pending.pop(0)
                    if mutant.id in known:
                        outcomes.setdefault(module, []).append((mutant, "equivalent"))
                        continue
                    scratch = free.pop()
                    futures[pool.submit(_run, mutant, scratch, args.timeout, args.edge_tests_only)] = (mutant, scratch)
                if not futures:
                    continue
                done, _ = concurrent.futures.wait(futures, return_when=concurrent.futures.FIRST_COMPLETED)
                for future in done:
                    mutant, scratch = futures.pop(future)
                    free.append(scratch)
                    outcomes.setdefault(mutant.module, []).append((mutant, future.result()))
    finally:
        for scratch in scratches:
            shutil.rmtree(scratch, ignore_errors=True)
    totals = {module: total for module, total, _ in plan}
    print(f"{'module':<34}{'mutants':>8}{'run':>6}{'killed':>8}{'survived':>10}{'timeout':>9}{'equiv.':>8}{'score':>8}")
    below = []
    for module in sorted(outcomes):
        results = [r for _, r in outcomes[module]]
        killed, survived = results.count("killed"), results.count("survived")
        timeouts, equivalent = results.count("timeout"), results.count("equivalent")
        # Timeouts count against the score: they are not shown to be killed.
        judged = killed + survived + timeouts
        score = killed / judged if judged else 1.0
        print(f"{module:<34}{totals[module]:>8}{len(results):>6}{killed:>8}{survived:>10}{timeouts:>9}{equivalent:>8}{score:>7.0%}")
        if args.fail_under is not None and score * 100 < args.fail_under:
            below.append(module)
    print(f"\n{len(plan)} mutants in {time.monotonic() - started:.0f} s with {args.jobs} jobs")
    survivors = sorted(((m, r) for module in outcomes for m, r in outcomes[module] if r in ("survived", "timeout")),
                       key=lambda pair: (pair[0].module, pair[0].line, pair[0].column))
    if survivors:
        print("\nsurvivors (and timeouts):")
        for mutant, result in survivors:
            print(f"  {mutant.id}{'  [timeout]' if result == 'timeout' else ''}")
    if below:
        print(f"\nbelow {args.fail_under:g} %: {', '.join(below)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
