"""Raw lines to columns of ticks without a Python object per tick: a compiled JSON scanner.

``scan`` reads many NDJSON lines from one byte buffer and writes each line's ticks into numpy
columns, doing in compiled code exactly what ``features.ticks.parse_line`` does for the lines
it is sure of, and handing every other line back to ``parse_line``. A line is handled here
when it is plain ASCII JSON without escapes, has one of the shapes of ``features.ticks`` and
every value parses on the exact fast paths (decimal numbers with at most 16 significant
digits and a power of ten up to 22, which convert exactly as ``float()`` does; ISO-8601 times
on the layout ``parse_time_ns`` caches) into valid ticks. Anything else (a rejection, a frame
of another channel, an escape, an exotic spelling) goes to ``parse_line``, so the two paths
never disagree; tests/unit/test_scan.py checks that on generated lines of every shape.
"""

from __future__ import annotations

import numpy as np
from features.jit import COMPILED, njit

from features.native import NO_SEQUENCE

OK, FALLBACK = 0, 1  # per line: ticks written here, or to be parsed by features.ticks.parse_line
MAX_TICKERS = 8  # tickers per frame handled here; a frame with more goes to parse_line
MAX_DEPTH = 64
START_YEAR, END_YEAR = 1970, 2261  # times handled here (ns since 1970 must fit 64 bits)

KEYS = (
    "frame", "payload", "channel", "events", "type", "product_id", "timestamp", "ts", "ws_timestamp", "time",
    "price", "best_bid", "best_ask", "best_bid_qty", "best_bid_quantity", "best_bid_size", "best_ask_qty",
    "best_ask_quantity", "best_ask_size", "volume_24h", "volume_24_h", "sequence_num", "sequence", "raw", "gap",
    "tickers",
)
(K_FRAME, K_PAYLOAD, K_CHANNEL, K_EVENTS, K_TYPE, K_PRODUCT, K_TIMESTAMP, K_TS, K_WS_TIMESTAMP, K_TIME,
 K_PRICE, K_BID, K_ASK, K_BID_QTY, K_BID_QUANTITY, K_BID_SIZE, K_ASK_QTY, K_ASK_QUANTITY, K_ASK_SIZE,
 K_VOLUME_24H, K_VOLUME_24_H, K_SEQUENCE_NUM, K_SEQUENCE, K_RAW, K_GAP, K_TICKERS) = range(len(KEYS))
N_KEYS = len(KEYS)
_KEY_LEN = np.array([len(k) for k in KEYS], dtype=np.int64)
_KEY_BYTES = np.zeros((N_KEYS, int(_KEY_LEN.max())), dtype=np.uint8)
for _i, _k in enumerate(KEYS):
    _KEY_BYTES[_i, :len(_k)] = np.frombuffer(_k.encode(), dtype=np.uint8)
_TICKER = np.frombuffer(b"ticker", dtype=np.uint8).copy()
_TRUE = np.frombuffer(b"true", dtype=np.uint8).copy()
_FALSE = np.frombuffer(b"false", dtype=np.uint8).copy()
_NULL = np.frombuffer(b"null", dtype=np.uint8).copy()
_KEY_SLOTS = 128  # open-addressing table of the key ids by a hash of the key text


def _key_hash(text: bytes) -> int:
    h = len(text)
    for c in text:
        h = (h * 31 + c) & 0xFFFF
    return h & (_KEY_SLOTS - 1)


_KEY_TABLE = np.full(_KEY_SLOTS, -1, dtype=np.int64)
for _i, _k in enumerate(KEYS):
    _h = _key_hash(_k.encode())
    while _KEY_TABLE[_h] >= 0:
        _h = (_h + 1) & (_KEY_SLOTS - 1)
    _KEY_TABLE[_h] = _i
# bytes that end the fast path through a string: the closing quote (1); escapes, control and non-ASCII bytes (2)
_STRING_STOP = np.zeros(256, dtype=np.uint8)
_STRING_STOP[34] = 1
_STRING_STOP[92] = 2
_STRING_STOP[:32] = 2
_STRING_STOP[128:] = 2

# value kinds
ABSENT, V_STR, V_INT, V_FLOAT, V_TRUE, V_FALSE, V_NULL, V_OBJ, V_ARR = range(9)
# contexts: which object or array the scanner is in
(C_OTHER, C_ROOT, C_RAW, C_FRAME, C_EVENTS_ROOT, C_EVENTS_FRAME, C_EVENT_ROOT, C_EVENT_FRAME,
 C_TICKERS_ROOT, C_TICKERS_FRAME, C_TICKER) = range(11)
# rows of the per-line slot table
ROW_ROOT, ROW_RAW, ROW_FRAME, ROW_TICKER = 0, 1, 2, 3
_POW10 = np.array([10.0 ** k for k in range(23)])
_TWO53 = 1 << 53
_FRACTION_SCALE = np.array([10 ** (9 - n) for n in range(10)], dtype=np.int64)
_CUM_DAYS = np.array([0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334], dtype=np.int64)


if COMPILED:
    from numba import carray, types
    from numba.core import cgutils
    from numba.extending import intrinsic

    @intrinsic
    def _voidptr(typingctx, address):
        def codegen(context, builder, signature, args):
            return builder.inttoptr(args[0], cgutils.voidptr_t)
        return types.voidptr(types.intp), codegen

    @njit()
    def _borrow(a):
        """A view of ``a`` without its reference count, for arrays the caller keeps alive.

        Every array passed to a compiled helper is otherwise counted in and out with atomic
        operations, which took half the scanner's time.
        """
        return carray(_voidptr(a.ctypes.data), a.shape, a.dtype)
else:
    def _borrow(a):
        return a


class TickColumns:
    """Ticks as columns, in stream order; ``line`` is the index of the line each came from."""

    __slots__ = ("line", "product", "ts", "price", "bid", "ask", "bid_qty", "ask_qty", "volume", "sequence",
                 "forced", "products")

    def __init__(self, n: int) -> None:
        self.line = np.empty(n, dtype=np.int64)
        self.product = np.empty(n, dtype=np.int64)  # index into ``products``
        self.ts = np.empty(n, dtype=np.int64)
        self.price = np.empty(n)
        self.bid = np.empty(n)
        self.ask = np.empty(n)
        self.bid_qty = np.empty(n)  # NaN: absent
        self.ask_qty = np.empty(n)
        self.volume = np.empty(n)
        self.sequence = np.empty(n, dtype=np.int64)  # NO_SEQUENCE: absent
        self.forced = np.empty(n, dtype=np.bool_)  # the record carried a recorder gap: a new segment
        self.products: list[str] = []

    def __len__(self) -> int:
        return len(self.ts)

    def take(self, index: np.ndarray) -> TickColumns:
        out = TickColumns(0)
        for name in self.__slots__[:-1]:
            setattr(out, name, getattr(self, name)[index])
        out.products = self.products
        return out


def split_lines(buf: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Spans of the complete, non-blank lines of ``buf`` and the offset where the unfinished last line starts.

    Blank means empty or only ASCII whitespace, as ``bytes.isspace``; ``\\r`` stays in the line.
    """
    ends = np.flatnonzero(buf == 10)
    starts = np.empty_like(ends)
    if len(ends):
        starts[0] = 0
        starts[1:] = ends[:-1] + 1
    keep = _not_blank(buf, starts, ends)
    cut = int(ends[-1]) + 1 if len(ends) else 0
    return starts[keep], ends[keep], cut


@njit()
def _not_blank(buf, starts, ends):
    keep = np.ones(starts.shape[0], dtype=np.bool_)
    for i in range(starts.shape[0]):
        blank = True
        for p in range(starts[i], ends[i]):
            c = buf[p]
            if not (c == 32 or c == 9 or c == 13 or c == 11 or c == 12):
                blank = False
                break
        keep[i] = not blank
    return keep


@njit()
def _ws(buf, p, end):
    while p < end:
        c = buf[p]
        if c == 32 or c == 9 or c == 10 or c == 13:
            p += 1
        else:
            break
    return p


@njit()
def _string_end(buf, p, end):
    """Index of the closing quote of the string whose content starts at ``p``; -1 for what is not handled here."""
    stop = _STRING_STOP
    while p < end:
        kind = stop[buf[p]]
        if kind:
            return p if kind == 1 else -1  # an escape, a control character, or not ASCII: -1
        p += 1
    return -1


@njit()
def _number_end(buf, p, end):
    """End of the JSON number at ``p`` and its kind; kind -1 for what is not handled here (exponents, > 18 digits)."""
    if p < end and buf[p] == 45:
        p += 1
    if p >= end:
        return p, -1
    c = buf[p]
    if c == 48:
        p += 1
        digits = 1
    elif 49 <= c <= 57:
        digits = 0
        while p < end and 48 <= buf[p] <= 57:
            p += 1
            digits += 1
        if digits > 18:
            return p, -1
    else:
        return p, -1
    kind = V_INT
    if p < end and buf[p] == 46:
        p += 1
        frac = 0
        while p < end and 48 <= buf[p] <= 57:
            p += 1
            frac += 1
        if frac == 0:
            return p, -1
        kind = V_FLOAT
    if p < end and (buf[p] == 101 or buf[p] == 69):
        return p, -1
    return p, kind


@njit()
def _literal(buf, p, end, text):
    if p + len(text) > end:
        return False
    for i in range(len(text)):
        if buf[p + i] != text[i]:
            return False
    return True


@njit()
def _key_id(buf, s, e, keys, key_len):
    n = e - s
    h = n
    for i in range(s, e):
        h = (h * 31 + buf[i]) & 0xFFFF
    h &= _KEY_SLOTS - 1
    table = _KEY_TABLE
    while table[h] >= 0:
        k = table[h]
        if key_len[k] == n:
            same = True
            for i in range(n):
                if buf[s + i] != keys[k, i]:
                    same = False
                    break
            if same:
                return k
        h = (h + 1) & (_KEY_SLOTS - 1)
    return -1


@njit()
def parse_decimal(buf, s, e):
    """``float()`` of a plain decimal (``-?digits(.digits)?``) when it converts exactly: (ok, value)."""
    i = s
    negative = False
    if i < e and buf[i] == 45:
        negative = True
        i += 1
    mantissa = 0
    significant = 0
    int_digits = 0
    frac_digits = 0
    point = False
    while i < e:
        c = buf[i]
        if c == 46 and not point:
            point = True
            i += 1
            continue
        if c < 48 or c > 57:
            break
        d = c - 48
        if mantissa or d:
            mantissa = mantissa * 10 + d
            significant += 1
            if significant > 16:
                return False, 0.0
        if point:
            frac_digits += 1
        else:
            int_digits += 1
        i += 1
    if i != e or int_digits == 0 or (point and frac_digits == 0):
        return False, 0.0
    scale = frac_digits
    if mantissa == 0:
        return True, -0.0 if negative else 0.0
    if mantissa > _TWO53 or scale > 22:
        return False, 0.0
    # Both operands exact, one correctly rounded division: the nearest double, as float() gives.
    value = mantissa / _POW10[scale]
    return True, -value if negative else value


@njit()
def _digits(buf, s, n):
    value = 0
    for i in range(s, s + n):
        c = buf[i]
        if c < 48 or c > 57:
            return -1
        value = value * 10 + (c - 48)
    return value


@njit()
def parse_time(buf, s, e):
    """``parse_time_ns`` of ISO-8601 text on its cached layout (YYYY-MM-DD[T ]HH:MM:SS...): (ok, ns)."""
    if e - s < 19:
        return False, 0
    if buf[s + 4] != 45 or buf[s + 7] != 45 or not (buf[s + 10] == 84 or buf[s + 10] == 32) \
            or buf[s + 13] != 58 or buf[s + 16] != 58:
        return False, 0
    year = _digits(buf, s, 4)
    month = _digits(buf, s + 5, 2)
    day = _digits(buf, s + 8, 2)
    hour = _digits(buf, s + 11, 2)
    minute = _digits(buf, s + 14, 2)
    second = _digits(buf, s + 17, 2)
    if year < START_YEAR or year > END_YEAR or month < 1 or month > 12 or day < 1 or hour < 0 or hour > 23 \
            or minute < 0 or minute > 59 or second < 0 or second > 59:
        return False, 0
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    month_days = 31
    if month == 2:
        month_days = 29 if leap else 28
    elif month == 4 or month == 6 or month == 9 or month == 11:
        month_days = 30
    if day > month_days:
        return False, 0
    y = year - 1
    days = y * 365 + y // 4 - y // 100 + y // 400 - 719162  # days from 1970-01-01 to year-01-01
    days += _CUM_DAYS[month - 1] + (1 if leap and month > 2 else 0) + day - 1
    ns = (days * 86400 + hour * 3600 + minute * 60 + second) * 1_000_000_000
    rest_s = s + 19
    end = e
    if end > rest_s:
        last = buf[end - 1]
        if last == 90 or last == 122:  # Z, z
            end -= 1
        elif end - rest_s >= 6 and buf[end - 3] == 58 and (buf[end - 6] == 43 or buf[end - 6] == 45):
            hours = _digits(buf, end - 5, 2)
            minutes = _digits(buf, end - 2, 2)
            if hours < 0 or minutes < 0:
                return False, 0
            offset = (hours * 3600 + minutes * 60) * 1_000_000_000
            ns -= offset if buf[end - 6] == 43 else -offset
            end -= 6
        if end > rest_s:
            if buf[rest_s] != 46 or end - rest_s < 2:
                return False, 0
            n = end - rest_s - 1
            for i in range(rest_s + 1, end):
                if buf[i] < 48 or buf[i] > 57:
                    return False, 0
            used = min(n, 9)
            ns += _digits(buf, rest_s + 1, used) * _FRACTION_SCALE[used]
    if ns < 0:
        return False, 0
    return True, ns


@njit()
def _number(kind, buf, s, e):
    """A required number (price, bid, ask): (ok, value); text or JSON number, not a bool or container."""
    if kind == V_STR or kind == V_INT or kind == V_FLOAT:
        return parse_decimal(buf, s, e)
    return False, 0.0


@njit()
def _optional(kind, buf, s, e):
    """``_optional_float`` of ticks.py: (ok, value or NaN for None)."""
    if kind == ABSENT or kind == V_NULL:
        return True, np.nan
    if kind == V_STR and e == s:
        return True, np.nan
    if kind == V_STR or kind == V_INT or kind == V_FLOAT:
        ok, value = parse_decimal(buf, s, e)
        if not ok:
            return False, 0.0
        if 0.0 <= value < np.inf:
            return True, value
        return True, np.nan
    return False, 0.0  # a bool, object or array: a rejection, left to parse_line


@njit()
def _sequence(kind, buf, s, e):
    """An integer sequence number, else none (as ``type(x) is int``)."""
    if kind != V_INT:
        return NO_SEQUENCE
    negative = buf[s] == 45
    value = _digits(buf, s + 1 if negative else s, e - s - (1 if negative else 0))
    return -value if negative else value


@njit()
def _first_set(kinds, row, a, b, c):
    """The first of keys a, b, c (-1: none) whose value is present and not null, in ``row``."""
    for k in (a, b, c):
        if k >= 0 and kinds[row, k] != ABSENT and kinds[row, k] != V_NULL:
            return k
    return -1


@njit()
def _fnv(buf, s, e):
    h = np.uint64(14695981039346656037)
    for i in range(s, e):
        h = (h ^ np.uint64(buf[i])) * np.uint64(1099511628211)
    return np.int64(h)


def scan_lines(buf: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> tuple[TickColumns, np.ndarray]:
    """Ticks of the lines ``buf[starts[i]:ends[i]]`` and, per line, OK or FALLBACK (left to ``parse_line``).

    Product names are decoded once per distinct name, not per tick.
    """
    n_lines = len(starts)
    if not COMPILED:  # scanning byte by byte in Python would be slower than parse_line
        ticks = TickColumns(0)
        ticks.products = []
        return ticks, np.full(n_lines, FALLBACK, dtype=np.int8)
    capacity = n_lines + 16
    ticks = TickColumns(capacity)
    line_kind = np.empty(n_lines, dtype=np.int8)
    pstart = np.empty(capacity, dtype=np.int64)
    pend = np.empty(capacity, dtype=np.int64)
    digest = np.empty(capacity, dtype=np.int64)
    n_rows = ROW_TICKER + MAX_TICKERS
    scratch = (np.zeros((n_rows, N_KEYS), dtype=np.int8), np.zeros((n_rows, N_KEYS), dtype=np.int64),
               np.zeros((n_rows, N_KEYS), dtype=np.int64), np.zeros(MAX_TICKERS, dtype=np.int64),
               np.zeros(MAX_DEPTH, dtype=np.int64), np.zeros(MAX_DEPTH, dtype=np.bool_),
               np.zeros(MAX_DEPTH, dtype=np.int64))
    n = _scan(buf, starts, ends, *scratch, line_kind, ticks.line, pstart, pend, digest, ticks.ts, ticks.price,
              ticks.bid, ticks.ask, ticks.bid_qty, ticks.ask_qty, ticks.volume, ticks.sequence, ticks.forced)
    ticks = ticks.take(slice(0, n))
    pstart, pend, digest = pstart[:n], pend[:n], digest[:n]
    if n == 0:
        return ticks, line_kind
    unique, first, code = np.unique(digest, return_index=True, return_inverse=True)
    if len(unique) > 1 and same_spans(buf, pstart, pend, pstart[first][code], pend[first][code]):
        # two names with one 64-bit digest: name every tick on its own (never seen; kept correct anyway)
        names = [buf[s:e].tobytes().decode() for s, e in zip(pstart.tolist(), pend.tolist())]
        ticks.products = sorted(set(names))
        index = {name: i for i, name in enumerate(ticks.products)}
        ticks.product = np.array([index[name] for name in names], dtype=np.int64)
        return ticks, line_kind
    ticks.products = [buf[s:e].tobytes().decode() for s, e in zip(pstart[first].tolist(), pend[first].tolist())]
    ticks.product = code.astype(np.int64).reshape(-1)
    return ticks, line_kind


@njit()
def _scan(buf, starts, ends, kinds, vs, ve, owner, stack_ctx, stack_obj, stack_aux, line_kind, t_line, t_pstart,
          t_pend, t_hash, t_ts, t_price, t_bid, t_ask, t_bid_qty, t_ask_qty, t_volume, t_sequence, t_forced):
    """Scan the lines: ``line_kind[i]`` = OK (its ticks written) or FALLBACK; returns the number of ticks.

    Tick columns have room for ``len(t_ts)`` ticks; a line that would exceed it falls back.
    """
    buf, starts, ends, kinds, vs, ve = _borrow(buf), _borrow(starts), _borrow(ends), _borrow(kinds), _borrow(vs), \
        _borrow(ve)
    owner, stack_ctx, stack_obj, stack_aux = _borrow(owner), _borrow(stack_ctx), _borrow(stack_obj), \
        _borrow(stack_aux)
    line_kind, t_line, t_pstart, t_pend, t_hash = _borrow(line_kind), _borrow(t_line), _borrow(t_pstart), \
        _borrow(t_pend), _borrow(t_hash)
    t_ts, t_price, t_bid, t_ask = _borrow(t_ts), _borrow(t_price), _borrow(t_bid), _borrow(t_ask)
    t_bid_qty, t_ask_qty, t_volume = _borrow(t_bid_qty), _borrow(t_ask_qty), _borrow(t_volume)
    t_sequence, t_forced = _borrow(t_sequence), _borrow(t_forced)
    keys = _KEY_BYTES
    key_len = _KEY_LEN
    true_text = _TRUE
    false_text = _FALSE
    null_text = _NULL
    capacity = t_ts.shape[0]
    n_ticks = 0
    for li in range(starts.shape[0]):
        line_kind[li] = FALLBACK
        p = starts[li]
        end = ends[li]
        kinds[:ROW_TICKER] = ABSENT
        n_tickers = 0
        frames = 0
        depth = 0
        p = _ws(buf, p, end)
        if p >= end or buf[p] != 123:
            continue
        p += 1
        stack_ctx[0] = C_ROOT
        stack_obj[0] = True
        depth = 1
        ok = True
        # 0: after '{', 1: expect a key, 2: after '[', 3: expect an element, 4: after a value
        state = 0
        while True:
            p = _ws(buf, p, end)
            if p >= end:
                ok = False
                break
            c = buf[p]
            ctx = stack_ctx[depth - 1]
            if state == 0 or state == 2 or state == 4:
                is_object = stack_obj[depth - 1]
                if state == 4 and c == 44:
                    p += 1
                    state = 1 if is_object else 3
                    continue
                if c == (125 if is_object else 93):
                    p += 1
                    depth -= 1
                    if (ctx == C_EVENT_ROOT or ctx == C_EVENT_FRAME) and stack_aux[depth] == 0:
                        ok = False  # an event without a tickers list
                        break
                    state = 4
                    if depth == 0:
                        break
                    continue
                if state == 4:
                    ok = False
                    break
                state = 1 if state == 0 else 3
                continue
            # state 1 (a key, then its value) or 3 (an array element)
            row = -1
            key = -1
            if state == 1:
                if c != 34:
                    ok = False
                    break
                ks = p + 1
                ke = _string_end(buf, ks, end)
                if ke < 0:
                    ok = False
                    break
                p = _ws(buf, ke + 1, end)
                if p >= end or buf[p] != 58:
                    ok = False
                    break
                p = _ws(buf, p + 1, end)
                if p >= end:
                    ok = False
                    break
                c = buf[p]
                if ctx == C_ROOT:
                    row = ROW_ROOT
                elif ctx == C_RAW:
                    row = ROW_RAW
                elif ctx == C_FRAME:
                    row = ROW_FRAME
                elif ctx == C_TICKER:
                    row = stack_aux[depth - 1]
                if row >= 0 or ctx == C_EVENT_ROOT or ctx == C_EVENT_FRAME:
                    key = _key_id(buf, ks, ke, keys, key_len)
                if (ctx == C_EVENT_ROOT or ctx == C_EVENT_FRAME) and key == K_TICKERS:
                    if stack_aux[depth - 1] != 0 or c != 91:  # a repeated key, or tickers not a list
                        ok = False
                        break
                    stack_aux[depth - 1] = 1
                if row >= 0 and key >= 0 and kinds[row, key] != ABSENT:  # a repeated key: the last wins in Python
                    ok = False
                    break
            # the value
            child = C_OTHER
            if c == 123 or c == 91:
                if depth >= MAX_DEPTH:
                    ok = False
                    break
                if state == 1:
                    if c == 123 and ctx == C_ROOT and key == K_RAW:
                        child = C_RAW
                    elif c == 123 and ctx == C_ROOT and (key == K_FRAME or key == K_PAYLOAD):
                        frames += 1
                        child = C_FRAME
                    elif c == 91 and ctx == C_ROOT and key == K_EVENTS:
                        child = C_EVENTS_ROOT
                    elif c == 91 and ctx == C_FRAME and key == K_EVENTS:
                        child = C_EVENTS_FRAME
                    elif c == 91 and ctx == C_EVENT_ROOT and key == K_TICKERS:
                        child = C_TICKERS_ROOT
                    elif c == 91 and ctx == C_EVENT_FRAME and key == K_TICKERS:
                        child = C_TICKERS_FRAME
                else:
                    if ctx == C_EVENTS_ROOT or ctx == C_EVENTS_FRAME or ctx == C_TICKERS_ROOT \
                            or ctx == C_TICKERS_FRAME:
                        if c != 123:  # an event or ticker that is not an object: a rejection
                            ok = False
                            break
                        if ctx == C_EVENTS_ROOT:
                            child = C_EVENT_ROOT
                        elif ctx == C_EVENTS_FRAME:
                            child = C_EVENT_FRAME
                        else:
                            if n_tickers == MAX_TICKERS:
                                ok = False
                                break
                            child = C_TICKER
                if row >= 0 and key >= 0:
                    kinds[row, key] = V_OBJ if c == 123 else V_ARR
                stack_ctx[depth] = child
                stack_obj[depth] = c == 123
                stack_aux[depth] = 0
                if child == C_TICKER:
                    stack_aux[depth] = ROW_TICKER + n_tickers
                    kinds[ROW_TICKER + n_tickers] = ABSENT
                    owner[n_tickers] = 1 if ctx == C_TICKERS_ROOT else 2
                    n_tickers += 1
                depth += 1
                p += 1
                state = 0 if c == 123 else 2
                continue
            if state == 3 and (ctx == C_EVENTS_ROOT or ctx == C_EVENTS_FRAME or ctx == C_TICKERS_ROOT
                               or ctx == C_TICKERS_FRAME):
                ok = False  # an event or ticker that is not an object
                break
            if c == 34:
                s = p + 1
                e = _string_end(buf, s, end)
                if e < 0:
                    ok = False
                    break
                kind = V_STR
                p = e + 1
            elif c == 45 or 48 <= c <= 57:
                s = p
                e, kind = _number_end(buf, p, end)
                if kind < 0:
                    ok = False
                    break
                p = e
            elif c == 116 and _literal(buf, p, end, true_text):
                s, e, kind = p, p + 4, V_TRUE
                p += 4
            elif c == 102 and _literal(buf, p, end, false_text):
                s, e, kind = p, p + 5, V_FALSE
                p += 5
            elif c == 110 and _literal(buf, p, end, null_text):
                s, e, kind = p, p + 4, V_NULL
                p += 4
            else:
                ok = False
                break
            if row >= 0 and key >= 0:
                kinds[row, key] = kind
                vs[row, key] = s
                ve[row, key] = e
            state = 4
        if not ok or depth != 0 or _ws(buf, p, end) != end or frames > 1:
            continue
        n_new = _interpret(buf, kinds, vs, ve, owner, n_tickers, li, n_ticks, capacity, t_line, t_pstart,
                           t_pend, t_hash, t_ts, t_price, t_bid, t_ask, t_bid_qty, t_ask_qty, t_volume,
                           t_sequence, t_forced)
        if n_new >= 0:
            line_kind[li] = OK
            n_ticks += n_new
    return n_ticks


@njit()
def _interpret(buf, kinds, vs, ve, owner, n_tickers, li, at, capacity, t_line, t_pstart, t_pend, t_hash, t_ts,
               t_price, t_bid, t_ask, t_bid_qty, t_ask_qty, t_volume, t_sequence, t_forced):
    """``parse_object`` on the scanned slots: the number of ticks written at ``at``, or -1 to fall back."""
    root = ROW_ROOT
    gap = False
    if kinds[root, K_FRAME] != ABSENT or kinds[root, K_PAYLOAD] != ABSENT:
        # the project's raw record ("frame" wins over "payload"), or a frame wrapped by another recorder
        key = K_FRAME if kinds[root, K_FRAME] != ABSENT else K_PAYLOAD
        if kinds[root, key] != V_OBJ or kinds[root, K_EVENTS] != ABSENT:
            return -1
        if key == K_FRAME:
            g = kinds[root, K_GAP]
            if g == V_TRUE or (g == V_STR and ve[root, K_GAP] > vs[root, K_GAP]):
                gap = True
            elif not (g == ABSENT or g == V_NULL or g == V_FALSE or g == V_STR):
                return -1
        frame = ROW_FRAME
        want_owner = 2
    elif kinds[root, K_CHANNEL] != ABSENT or kinds[root, K_EVENTS] != ABSENT:
        frame = root
        want_owner = 1
    else:
        if kinds[root, K_TYPE] == V_STR:
            s, e = vs[root, K_TYPE], ve[root, K_TYPE]
            if not (e - s == 6 and _literal(buf, s, e, _TICKER)):
                return -1  # a message of another type: skipped, counted by parse_line
        if kinds[root, K_PRODUCT] == ABSENT and kinds[root, K_TIMESTAMP] == ABSENT and kinds[root, K_TS] == ABSENT \
                and kinds[root, K_WS_TIMESTAMP] == ABSENT and kinds[root, K_TIME] == ABSENT:
            return -1
        return _flat(buf, kinds, vs, ve, li, at, capacity, t_line, t_pstart, t_pend, t_hash, t_ts, t_price, t_bid,
                     t_ask, t_bid_qty, t_ask_qty, t_volume, t_sequence, t_forced)
    # a ticker frame
    s, e = vs[frame, K_CHANNEL], ve[frame, K_CHANNEL]
    if kinds[frame, K_CHANNEL] != V_STR or not (e - s == 6 and _literal(buf, s, e, _TICKER)):
        return -1
    if kinds[frame, K_TIMESTAMP] != V_STR or kinds[frame, K_EVENTS] != V_ARR:
        return -1
    ok, ts = parse_time(buf, vs[frame, K_TIMESTAMP], ve[frame, K_TIMESTAMP])
    if not ok:
        return -1
    sequence = NO_SEQUENCE
    if kinds[frame, K_SEQUENCE_NUM] != ABSENT:
        sequence = _sequence(kinds[frame, K_SEQUENCE_NUM], buf, vs[frame, K_SEQUENCE_NUM], ve[frame, K_SEQUENCE_NUM])
    j = at
    for t in range(n_tickers):
        if owner[t] != want_owner:
            continue
        if j >= capacity:
            return -1
        row = ROW_TICKER + t
        if not _tick(buf, kinds, vs, ve, row, row, K_PRODUCT, K_PRICE, K_BID, K_ASK, K_BID_QUANTITY, -1, -1,
                     K_ASK_QUANTITY, -1, -1, K_VOLUME_24_H, -1, j, t_pstart, t_pend, t_hash, t_price, t_bid, t_ask,
                     t_bid_qty, t_ask_qty, t_volume):
            return -1
        t_line[j] = li
        t_ts[j] = ts
        t_sequence[j] = sequence
        t_forced[j] = gap
        j += 1
    return j - at


@njit()
def _flat(buf, kinds, vs, ve, li, at, capacity, t_line, t_pstart, t_pend, t_hash, t_ts, t_price, t_bid, t_ask,
          t_bid_qty, t_ask_qty, t_volume, t_sequence, t_forced):
    """``_flat_tick`` of ticks.py: one tick or -1."""
    if at >= capacity:
        return -1
    root = ROW_ROOT
    k = _first_set(kinds, root, K_TIMESTAMP, K_TS, K_WS_TIMESTAMP)
    if k < 0:
        k = _first_set(kinds, root, K_TIME, -1, -1)
    if k < 0 or kinds[root, k] != V_STR:
        return -1
    ok, ts = parse_time(buf, vs[root, k], ve[root, k])
    if not ok:
        return -1
    raw = ROW_RAW if kinds[root, K_RAW] == V_OBJ else -1
    if not _tick(buf, kinds, vs, ve, root, raw, K_PRODUCT, K_PRICE, K_BID, K_ASK, K_BID_QTY, K_BID_QUANTITY,
                 K_BID_SIZE, K_ASK_QTY, K_ASK_QUANTITY, K_ASK_SIZE, K_VOLUME_24H, K_VOLUME_24_H, at, t_pstart, t_pend,
                 t_hash, t_price, t_bid, t_ask, t_bid_qty, t_ask_qty, t_volume):
        return -1
    k = _first_set(kinds, root, K_SEQUENCE_NUM, K_SEQUENCE, -1)
    t_sequence[at] = NO_SEQUENCE if k < 0 else _sequence(kinds[root, k], buf, vs[root, k], ve[root, k])
    t_line[at] = li
    t_ts[at] = ts
    t_forced[at] = False
    return 1


@njit()
def _pick(kinds, row, fallback, a, b, c):
    """(row, key) of the first present, non-null value among keys a, b, c in ``row``, then in ``fallback``."""
    k = _first_set(kinds, row, a, b, c)
    if k >= 0:
        return row, k
    if fallback >= 0 and fallback != row:
        k = _first_set(kinds, fallback, a, b, c)
        if k >= 0:
            return fallback, k
    return -1, -1


@njit()
def _tick(buf, kinds, vs, ve, row, fallback, k_product, k_price, k_bid, k_ask, kb1, kb2, kb3, ka1, ka2, ka3, kv1, kv2,
          j, t_pstart, t_pend, t_hash, t_price, t_bid, t_ask, t_bid_qty, t_ask_qty, t_volume):
    """``_make_tick`` of ticks.py into position ``j``; False when it would reject (left to parse_line)."""
    if kinds[row, k_product] != V_STR or ve[row, k_product] == vs[row, k_product]:
        return False
    ok1, price = _number(kinds[row, k_price], buf, vs[row, k_price], ve[row, k_price])
    ok2, bid = _number(kinds[row, k_bid], buf, vs[row, k_bid], ve[row, k_bid])
    ok3, ask = _number(kinds[row, k_ask], buf, vs[row, k_ask], ve[row, k_ask])
    if not (ok1 and ok2 and ok3):
        return False
    if not (0.0 < bid < np.inf and 0.0 < ask < np.inf and 0.0 < price < np.inf) or ask < bid:
        return False
    r, k = _pick(kinds, row, fallback, kb1, kb2, kb3)
    ok, bid_qty = _optional(ABSENT if r < 0 else kinds[r, k], buf, vs[r, k], ve[r, k])
    if not ok:
        return False
    r, k = _pick(kinds, row, fallback, ka1, ka2, ka3)
    ok, ask_qty = _optional(ABSENT if r < 0 else kinds[r, k], buf, vs[r, k], ve[r, k])
    if not ok:
        return False
    r, k = _pick(kinds, row, fallback, kv1, kv2, -1)
    ok, volume = _optional(ABSENT if r < 0 else kinds[r, k], buf, vs[r, k], ve[r, k])
    if not ok:
        return False
    s, e = vs[row, k_product], ve[row, k_product]
    t_pstart[j] = s
    t_pend[j] = e
    t_hash[j] = _fnv(buf, s, e)
    t_price[j] = price
    t_bid[j] = bid
    t_ask[j] = ask
    t_bid_qty[j] = bid_qty
    t_ask_qty[j] = ask_qty
    t_volume[j] = volume
    return True


@njit()
def same_spans(buf, s1, e1, s2, e2):
    """Positions where span i of (s1, e1) differs from span i of (s2, e2), as a count."""
    bad = 0
    for i in range(s1.shape[0]):
        n = e1[i] - s1[i]
        if n != e2[i] - s2[i]:
            bad += 1
            continue
        for k in range(n):
            if buf[s1[i] + k] != buf[s2[i] + k]:
                bad += 1
                break
    return bad
