"""Queries compiled once, run many times: the ORM writes the SQL, a login does not rebuild it.

Building a queryset and compiling it to SQL costs Django 0.2–0.6 ms of CPU for every query, five
to fifteen times what SQLite or PostgreSQL take to answer it; a complete login runs about thirty,
so the ORM's bookkeeping cost more than anything but the PIN hash (issue 17, goal 7). A
:class:`Compiled` query asks the ORM once per database for the SQL of a queryset built from
*markers* (distinct values of the declared types), finds where each marker landed among the SQL
parameters, and from then on runs that SQL with the caller's values in those places, turning the
rows into model instances (``select_related`` included) or tuples with the ORM's own converters::

    _BY_ID = Compiled(lambda pk: Key.objects.select_related("citizen").filter(pk=pk)[:1], int)
    key = _BY_ID.first(42)

    _USE = Compiled(lambda pk, now: Code.objects.filter(pk=pk, used_at=None), int, datetime,
                    update=lambda now: {"used_at": now})
    won = _USE.update(7, now)

What stays the ORM's: the SQL of each backend (quoting, ``FOR UPDATE`` on PostgreSQL, how a
datetime or UUID is stored), converters, model instances. What a compiled query cannot express
is refused when it is compiled, not guessed: a marker that lands nowhere or twice in a way that
cannot be told apart, a list parameter (``__in``), an ``exists()``. The same SQL is reused across
threads; each call runs on the calling thread's connection, inside its transaction.
"""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from collections.abc import Callable
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.models import NOT_PROVIDED, QuerySet
from django.db.models.query import ModelIterable, get_related_populators
from django.db.models.signals import post_save, pre_save
from django.db.models.sql import DeleteQuery, InsertQuery, UpdateQuery
from django.db.transaction import TransactionManagementError

_UTC = dt.timezone.utc


def _marker(kind: type, n: int, twin: int):
    """The ``n``-th marker of type ``kind``, in one of two sets (``twin`` 0 or 1): values no caller
    passes, within the range of the smallest integer column (an out-of-range integer makes the ORM
    give up on the query)."""
    if kind is int:
        return 12_000 + 11_000 * twin + n
    if kind is str:
        return f"\x00compiled-marker-{twin}-{n}\x00"
    if kind is dt.datetime:
        return dt.datetime(1903 + twin, 2, 3, 4, 5, 6, 700_000 + n, tzinfo=_UTC)
    if kind is uuid.UUID:
        return uuid.UUID(int=(0xC0FFEE + twin) * 2**96 + n)
    raise TypeError(f"a compiled query's parameters are int, str, datetime or UUID, not {kind.__name__}")


def _forms(kind: type, connection) -> list[Callable[[Any], Any]]:
    """How a value of ``kind`` may appear among a backend's SQL parameters, as the ORM prepares
    it: as it is, or (datetimes, UUIDs) in the form the backend stores."""
    if kind is dt.datetime:
        return [lambda v: v, connection.ops.adapt_datetimefield_value]
    if kind is uuid.UUID:
        return [lambda v: v, lambda v: v.hex]
    return [lambda v: v]


class _Plan:
    __slots__ = ("sql", "params", "slots", "locks", "model", "init_list", "start", "end", "populators",
                 "converters", "annotations")


class Compiled:
    """A queryset (or an update of one) whose SQL is built once per database; see the module."""

    def __init__(self, build: Callable[..., QuerySet], *types: type,
                 update: Callable[..., dict] | None = None, delete: bool = False, values: bool = False):
        if update is not None and delete:
            raise TypeError("a compiled query updates or deletes, not both")
        self.build, self.types, self.update_of, self.delete_rows, self.values = build, types, update, delete, values
        self._plans: dict[str, _Plan] = {}
        self._lock = threading.Lock()

    # --- Running -------------------------------------------------------------------------

    def all(self, *args, using: str = DEFAULT_DB_ALIAS) -> list:
        """Model instances (or, with ``values=True``, tuples in the SELECT's order)."""
        connection = connections[using]
        plan = self._plan(using, connection)
        if plan.locks and connection.get_autocommit():
            raise TransactionManagementError("select_for_update cannot be used outside of a transaction.")
        with connection.cursor() as cursor:
            cursor.execute(plan.sql, self._bind(plan, args))
            rows = cursor.fetchall()
        if plan.converters:
            rows = [self._convert(row, plan.converters, connection) for row in rows]
        if self.values:
            return [tuple(row) for row in rows]
        objects = []
        for row in rows:
            obj = plan.model.from_db(using, plan.init_list, row[plan.start:plan.end])
            for populator in plan.populators:
                populator.populate(row, obj)
            for name, pos in plan.annotations:
                setattr(obj, name, row[pos])
            objects.append(obj)
        return objects

    def first(self, *args, using: str = DEFAULT_DB_ALIAS):
        """The first row, or None (slice the queryset to ``[:1]`` so that only one is read)."""
        found = self.all(*args, using=using)
        return found[0] if found else None

    def update(self, *args, using: str = DEFAULT_DB_ALIAS) -> int:
        """Run the compiled UPDATE; how many rows it changed."""
        if self.update_of is None:
            raise TypeError("not a compiled update")
        return self._write(args, using)

    def delete(self, *args, using: str = DEFAULT_DB_ALIAS) -> int:
        """Run the compiled DELETE (no cascade, no signals: for rows nothing refers to); how many
        rows it removed."""
        if not self.delete_rows:
            raise TypeError("not a compiled delete")
        return self._write(args, using)

    def _write(self, args, using: str) -> int:
        connection = connections[using]
        plan = self._plan(using, connection)
        params = self._bind(plan, args)
        # As the ORM writes: an error spoils the transaction around it (it is rolled back).
        with transaction.mark_for_rollback_on_error(using), connection.cursor() as cursor:
            cursor.execute(plan.sql, params)
            return cursor.rowcount

    @staticmethod
    def _convert(row, converters, connection) -> list:
        row = list(row)
        for pos, convs, expression in converters:
            value = row[pos]
            for converter in convs:
                value = converter(value, expression, connection)
            row[pos] = value
        return row

    def _bind(self, plan: _Plan, args) -> list:
        if len(args) != len(self.types):
            raise TypeError(f"this compiled query takes {len(self.types)} values, not {len(args)}")
        for kind, value in zip(self.types, args):
            if not isinstance(value, kind) or isinstance(value, bool) or (kind is dt.datetime and value.tzinfo is None):
                raise TypeError(f"expected {'an aware ' if kind is dt.datetime else ''}{kind.__name__}, "
                                f"not {value!r}")
        params = list(plan.params)
        for pos, arg, form in plan.slots:
            params[pos] = form(args[arg])
        return params

    # --- Compiling -----------------------------------------------------------------------

    def _plan(self, using: str, connection) -> _Plan:
        return _cached(self._plans, self._lock, using, lambda: self._compile(using, connection))

    def _compile(self, using: str, connection) -> _Plan:
        # Built and compiled twice, with two sets of markers: what differs between the two is
        # where the caller's values go; what does not is the query's own.
        markers = [[_marker(kind, n, twin) for n, kind in enumerate(self.types)] for twin in (0, 1)]
        plan, twin_sql, twin_params = self._compile_with(markers[0], using), *self._sql(markers[1], using)[:2]
        if twin_sql != plan.sql or len(twin_params) != len(plan.params):
            raise TypeError("a compiled query's SQL may not depend on its values")
        plan.slots = self._slots(plan.params, twin_params, markers, connection)
        return plan

    def _sql(self, markers: list, using: str):
        queryset = self.build(*markers)
        if not isinstance(queryset, QuerySet):
            raise TypeError("a compiled query is built from a QuerySet")
        if self.update_of is not None:
            query = queryset.query.chain(UpdateQuery)
            query.add_update_values(self.update_of(*markers))
            compiler = query.get_compiler(using)
            sql, params = compiler.as_sql()
            if query.related_updates:
                raise TypeError("a compiled update changes one table")
        elif self.delete_rows:
            query = queryset.query.clone()
            query.__class__ = DeleteQuery
            compiler = query.get_compiler(using)
            sql, params = compiler.as_sql()
        else:
            compiler = queryset.query.get_compiler(using)
            sql, params = compiler.as_sql()
        return sql, tuple(params), queryset, compiler

    def _compile_with(self, markers: list, using: str) -> _Plan:
        sql, params, queryset, compiler = self._sql(markers, using)
        plan = _Plan()
        plan.sql, plan.params = sql, params
        plan.locks = bool(queryset.query.select_for_update)
        if self.update_of is not None or self.delete_rows:
            return plan
        if queryset._iterable_class is not ModelIterable and not self.values:
            raise TypeError("values()/values_list() querysets are compiled with values=True")
        if queryset._prefetch_related_lookups or queryset._known_related_objects:
            raise TypeError("a compiled query does not prefetch")
        fields = [s[0] for s in compiler.select[0:compiler.col_count]]
        plan.converters = [(pos, convs, expression)
                           for pos, (convs, expression) in compiler.get_converters(fields).items()]
        if not self.values:
            klass_info = compiler.klass_info
            plan.model = klass_info["model"]
            select_fields = klass_info["select_fields"]
            plan.start, plan.end = select_fields[0], select_fields[-1] + 1
            plan.init_list = [f[0].target.attname for f in compiler.select[plan.start:plan.end]]
            plan.populators = get_related_populators(klass_info, compiler.select, using)
            plan.annotations = list(compiler.annotation_col_map.items())
        return plan

    def _slots(self, params: tuple, twin_params: tuple, markers: list, connection) -> list[tuple[int, int, Callable]]:
        """Where each value goes: (parameter position, argument, how the backend takes it)."""
        slots, placed = [], set()
        for pos, (param, twin) in enumerate(zip(params, twin_params)):
            if isinstance(param, (list, tuple)):
                raise TypeError("a compiled query takes no list parameter")
            if _same(param, twin):
                continue  # the query's own constant
            for arg, kind in enumerate(self.types):
                # The backend's own wrapper of the type (psycopg's Int4 for an integer column).
                wrapped = [type(param)] if issubclass(type(param), kind) and type(param) is not kind else []
                forms = [form for form in [*_forms(kind, connection), *wrapped]
                         if _same(form(markers[0][arg]), param) and _same(form(markers[1][arg]), twin)]
                if forms:
                    slots.append((pos, arg, forms[0]))
                    placed.add(arg)
                    break
            else:
                raise TypeError(f"parameter {pos} of a compiled query is derived from its values, not one of them")
        missing = [n for n in range(len(self.types)) if n not in placed]
        if missing:
            raise TypeError(f"compiled query values {missing} are not used in its SQL")
        return slots


def _cached(plans: dict, lock: threading.Lock, key, compile_plan: Callable[[], Any]):
    """``plans[key]``, compiled by the first caller (the others wait for it)."""
    plan = plans.get(key)
    if plan is None:
        with lock:
            plan = plans.get(key)
            if plan is None:
                plan = plans[key] = compile_plan()
    return plan


def _same(a, b) -> bool:
    return type(a) is type(b) and a == b


class Inserter:
    """New rows of ``model`` inserted with SQL compiled once per database and row count: what
    ``Model.objects.create(**values)`` and ``bulk_create`` write (field defaults, ``pre_save``
    values such as ``auto_now``, the database-generated key read back), without building the
    INSERT for every row. ``pre_save`` and ``post_save`` are sent for each object, as ``create()``
    sends them; values are plain values, not expressions."""

    def __init__(self, model):
        meta = model._meta
        if meta.parents or any(f.db_default is not NOT_PROVIDED for f in meta.local_concrete_fields):
            raise TypeError("an Inserter writes one table, with no database defaults")
        self.model = model
        self._plans: dict[tuple[str, int, bool], tuple] = {}
        self._lock = threading.Lock()

    def create(self, using: str = DEFAULT_DB_ALIAS, **values):
        return self.create_many([self.model(**values)], using=using)[0]

    def create_many(self, objs: list, using: str = DEFAULT_DB_ALIAS) -> list:
        if not objs:
            return objs
        pk_set = [obj._is_pk_set() for obj in objs]
        if len(set(pk_set)) != 1:
            raise TypeError("an Inserter's rows all have their key set, or none does")
        connection = connections[using]
        fields, sql, by_column, returning, converters = self._plan(using, connection, len(objs), pk_set[0])
        for obj in objs:
            pre_save.send(sender=self.model, instance=obj, raw=False, using=using, update_fields=None)
        rows = []
        for obj in objs:
            row = []
            for field in fields:
                value = field.pre_save(obj, True)
                if hasattr(value, "resolve_expression"):
                    raise TypeError("an Inserter takes values, not expressions")
                row.append(field.get_db_prep_save(value, connection=connection))
            rows.append(row)
        # Row after row (VALUES (...), (...)), or an array per column (PostgreSQL's UNNEST).
        params = [list(column) for column in zip(*rows)] if by_column else [value for row in rows for value in row]
        with transaction.mark_for_rollback_on_error(using), connection.cursor() as cursor:
            cursor.execute(sql, params)
            rows = cursor.fetchall() if returning else []
        for obj, row in zip(objs, rows):
            for pos, (field, value) in enumerate(zip(returning, row)):
                for converter in converters.get(pos, ((), None))[0]:
                    value = converter(value, converters[pos][1], connection)
                setattr(obj, field.attname, value)
        for obj in objs:
            obj._state.adding, obj._state.db = False, using
            post_save.send(sender=self.model, instance=obj, created=True, update_fields=None, raw=False,
                           using=using)
        return objs

    def _plan(self, using: str, connection, count: int, pk_set: bool) -> tuple:
        return _cached(self._plans, self._lock, (using, count, pk_set),
                       lambda: self._compile(using, connection, count, pk_set))

    def _compile(self, using: str, connection, count: int, pk_set: bool) -> tuple:
        meta = self.model._meta
        fields = [f for f in meta.local_concrete_fields if pk_set or f is not meta.auto_field]
        returning = [] if pk_set else list(meta.db_returning_fields)
        if returning and not (connection.features.can_return_columns_from_insert
                              and (count == 1 or connection.features.can_return_rows_from_bulk_insert)):
            raise TypeError("this database cannot say which keys an insert generated")
        query = InsertQuery(self.model)
        query.insert_values(fields, [self.model() for _ in range(count)], raw=False)
        compiler = query.get_compiler(using)
        compiler.returning_fields = returning
        statements = compiler.as_sql()
        if len(statements) != 1:
            raise TypeError("an Inserter's rows are written in one statement")
        sql, params = statements[0]
        if len(params) == count * len(fields):
            by_column = False
        elif count > 1 and len(params) == len(fields) and all(isinstance(p, list) and len(p) == count for p in params):
            by_column = True
        else:
            raise TypeError("an Inserter's statement takes one value per field and row")
        converters = compiler.get_converters([f.get_col(meta.db_table) for f in returning]) if returning else {}
        return fields, sql, by_column, returning, converters


def first(queryset: QuerySet) -> QuerySet:
    """``queryset`` cut to the row ``first()`` would read: in its order, else by primary key."""
    return (queryset if queryset.ordered else queryset.order_by("pk"))[:1]
