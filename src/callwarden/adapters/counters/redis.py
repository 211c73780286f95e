"""Redis counters: limits shared by many callwarden instances (the scaled-out path).

Every operation is ONE Lua script run with EVALSHA (``register_script``), so it is atomic on the
server: two instances admitting against one tenant never exceed its limits together. The
scripts mirror :mod:`callwarden.core.limits` exactly; times travel as whole microseconds, which
Lua's doubles hold exactly, and the decision depends only on the ``now`` the caller passes.

Key layout (``P`` is the prefix, ``T`` the tenant id)::

    P:{t:T}:lease:<key>     ZSET  call id -> lease expiry (us)        concurrent calls per key
    P:{t:T}:call:<call id>  SET   keys the call holds                 exact release
    P:{t:T}:calls           ZSET  call id -> lease expiry (us)        leak checks, idempotency
    P:{t:T}:rate:<key>      STRING  theoretical arrival time (us)      GCRA
    P:{t:T}:win:<key>       ZSET  "<us>:<nonce>" -> event time (us)    rolling windows
    P:{t:T}:spend:<month>   HASH  settled, reserved (minor units)       month-to-date spend
    P:{t:T}:held:<month>    ZSET  call id -> reservation expiry (us)    live reservations
    P:{t:T}:amount:<month>  HASH  call id -> amount reserved             live reservations
    P:{t:T}:marks:<month>   SET   alert marks already reached            once per month
    P:{t:T}:res:<call id>   HASH  month, granted, at, note, exp          settlement by call id

The ``{t:T}`` hash tag puts all of a tenant's keys in one Redis Cluster slot, so each script
touches a single slot. The acquire, renew and release scripts also reach lease keys named in
the call's record rather than passed as KEYS (a call's keys are known only on the server); they
share the tag, so they are in the declared keys' slot, which is what Redis Cluster requires.
:meth:`RedisCounters.admit`, the per-attempt hot path, runs every check of an attempt in one
script and so one round trip; it declares one key of the tenant (for routing) and names the
others from the tenant prefix on the server, because redis-py packs each command argument in
Python and dozens of key and argument strings would cost more than the script itself.
Every key carries a TTL: the time its content stops mattering by the callers' clock, plus
``ttl_slack_s`` to absorb clock skew between instances and the server, so Redis never
accumulates dead keys. Run Redis with ``maxmemory-policy noeviction``: evicting a lease key
would undercount.

Connection errors, timeouts and a server that is loading, read-only or out of memory become
:class:`~callwarden.core.counters.CountersUnavailable`; script errors (bugs) propagate as they are.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import orjson
from redis.asyncio import Redis
from redis.asyncio.connection import BlockingConnectionPool
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from callwarden.adapters.counters.pipelining import ScriptPipeline
from callwarden.core.counters import (
    AdmitOutcome,
    AdmitPlan,
    AdmitStage,
    Counters,
    CountersUnavailable,
    LeaseClaim,
    LeaseOutcome,
    RateCheck,
    RateOutcome,
    SpendGrant,
    SpendMark,
    SpendReservation,
    SpendSettlement,
    WindowOutcome,
    check_admit_plan,
    check_amount,
    check_call_id,
    check_claims,
    check_key,
    check_marks,
    check_month,
    check_rate_checks,
    check_reservation,
    check_tenant_id,
    check_time,
    check_ttl,
    check_window,
)
from callwarden.core.limits import from_micros, to_micros

__all__ = ["RedisCounters"]

T = TypeVar("T")

# Server-side conditions that mean "not available right now" rather than "bug".
_UNAVAILABLE_REPLIES = (
    "LOADING",
    "READONLY",
    "MASTERDOWN",
    "CLUSTERDOWN",
    "TRYAGAIN",
    "OOM",
    "BUSY",
)

# Shared Lua helper: give a ZSET a TTL covering its latest score (us) plus the slack (ms).
_ZSET_TTL = """
local function zset_ttl(key, now, slack)
  local top = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
  if top[2] then
    local ms = math.ceil((tonumber(top[2]) - now) / 1000)
    if ms < 1 then ms = 1 end
    redis.call('PEXPIRE', key, ms + slack)
  end
end
"""

# Drop a call whose record is stale (expired by the callers' clock) together with its
# memberships. Memberships share the record's expiry, so none of them is live.
_DROP_CALL = """
local function drop_call(calls, rec, cid, lprefix)
  for _, k in ipairs(redis.call('SMEMBERS', rec)) do
    redis.call('ZREM', lprefix .. k, cid)
  end
  redis.call('DEL', rec)
  redis.call('ZREM', calls, cid)
end
"""

# Decide an acquisition without applying it: drops expired leases (and a stale record of the
# call) but takes nothing. lkeys, ckeys, limits: lease key, claim key and limit per claim.
# Returns the keys the call holds (a set), the live count per claim as found, the first full
# claim (1-based, 0 = room for all) and whether the call already held every claimed key.
_LEASE_DECIDE = """
local function lease_decide(calls, rec, cid, now, lprefix, lkeys, ckeys, limits)
  local held = {}
  local exp = redis.call('ZSCORE', calls, cid)
  redis.call('ZREMRANGEBYSCORE', calls, '-inf', now)
  if exp and tonumber(exp) > now then
    for _, k in ipairs(redis.call('SMEMBERS', rec)) do held[k] = true end
  elseif exp or redis.call('EXISTS', rec) == 1 then
    drop_call(calls, rec, cid, lprefix)
  end
  local counts, full, already = {}, 0, 1
  for i = 1, #lkeys do
    redis.call('ZREMRANGEBYSCORE', lkeys[i], '-inf', now)
    local c = redis.call('ZCARD', lkeys[i])
    counts[i] = c
    if not held[ckeys[i]] then
      already = 0
      if full == 0 and c >= limits[i] then full = i end
    end
  end
  return held, counts, full, already
end
"""

# Apply an acquisition lease_decide found room for: every lease of the call, old and new, now
# lapses at now + ttl. counts are lease_decide's; returns the live count per claim afterwards
# (ZADD reports whether the call was new on the key, so no recount is needed).
_LEASE_APPLY = """
local function lease_apply(calls, rec, cid, now, ttl, slack, lprefix, ckeys, held, counts)
  local newexp, fresh = now + ttl, {}
  for i = 1, #ckeys do
    local key = ckeys[i]
    if not held[key] then
      fresh[#fresh + 1] = key
      held[key] = true
    end
  end
  if #fresh > 0 then redis.call('SADD', rec, unpack(fresh)) end
  local added = {}
  for key, _ in pairs(held) do
    local lk = lprefix .. key
    added[key] = redis.call('ZADD', lk, newexp, cid)
    zset_ttl(lk, now, slack)
  end
  redis.call('ZADD', calls, newexp, cid)
  zset_ttl(calls, now, slack)
  redis.call('PEXPIRE', rec, math.ceil(ttl / 1000) + slack)
  local after = {}
  for i = 1, #ckeys do after[i] = counts[i] + added[ckeys[i]] end
  return after
end
"""

_LEASES = _ZSET_TTL + _DROP_CALL + _LEASE_DECIDE + _LEASE_APPLY

# KEYS: calls index, call record, lease key per claim.
# ARGV: call id, now us, ttl us, slack ms, lease key prefix, then (key, limit) per claim.
# Returns {acquired, full index (1-based, 0 = none), already held, count per claim...}.
_ACQUIRE = (
    _LEASES
    + """
local calls, rec = KEYS[1], KEYS[2]
local cid, now, ttl = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local slack, lprefix = tonumber(ARGV[4]), ARGV[5]
local lkeys, ckeys, limits = {}, {}, {}
for i = 1, #KEYS - 2 do
  lkeys[i], ckeys[i], limits[i] = KEYS[i + 2], ARGV[4 + 2 * i], tonumber(ARGV[5 + 2 * i])
end
local held, counts, full, already = lease_decide(calls, rec, cid, now, lprefix, lkeys, ckeys,
                                                 limits)
if full > 0 then
  local out = {0, full, 0}
  for i = 1, #counts do out[3 + i] = counts[i] end
  return out
end
counts = lease_apply(calls, rec, cid, now, ttl, slack, lprefix, ckeys, held, counts)
local out = {1, 0, already}
for i = 1, #counts do out[3 + i] = counts[i] end
return out
"""
)

# KEYS: calls index, call record. ARGV: call id, now us, ttl us, slack ms, lease key prefix.
# Returns 1 when renewed, 0 when the call holds nothing live.
_RENEW = (
    _ZSET_TTL
    + _DROP_CALL
    + """
local calls, rec = KEYS[1], KEYS[2]
local cid, now, ttl = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local slack, lprefix = tonumber(ARGV[4]), ARGV[5]
local exp = redis.call('ZSCORE', calls, cid)
if not exp or tonumber(exp) <= now then
  if exp or redis.call('EXISTS', rec) == 1 then drop_call(calls, rec, cid, lprefix) end
  return 0
end
local newexp = now + ttl
for _, k in ipairs(redis.call('SMEMBERS', rec)) do
  local lk = lprefix .. k
  redis.call('ZADD', lk, newexp, cid)
  zset_ttl(lk, now, slack)
end
redis.call('ZADD', calls, newexp, cid)
zset_ttl(calls, now, slack)
redis.call('PEXPIRE', rec, math.ceil(ttl / 1000) + slack)
return 1
"""
)

# KEYS: calls index, call record. ARGV: call id, lease key prefix, now us or "" (unknown).
# Returns 1 when the call held leases (live ones, when now is given), else 0.
_RELEASE = (
    _DROP_CALL
    + """
local calls, rec = KEYS[1], KEYS[2]
local cid, lprefix, now = ARGV[1], ARGV[2], tonumber(ARGV[3])
local exp = redis.call('ZSCORE', calls, cid)
local stored = exp or redis.call('EXISTS', rec) == 1
if not stored then return 0 end
drop_call(calls, rec, cid, lprefix)
if now == nil then return 1 end
if exp and tonumber(exp) > now then return 1 end
return 0
"""
)

# KEYS: one lease key. ARGV: now us. Returns the live leases on it.
_ACTIVE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', tonumber(ARGV[1]))
return redis.call('ZCARD', KEYS[1])
"""

# KEYS: calls index. ARGV: now us. Returns the call ids with live leases.
_CALLS = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', tonumber(ARGV[1]))
return redis.call('ZRANGE', KEYS[1], 0, -1)
"""

# GCRA as in limits.gcra_all, all-or-nothing: keys[i] is checked with params[2i - 1] (interval
# us) and params[2i] (tolerance us); every TAT is stored only when all conform. Returns the
# first refusing index (1-based, 0 = allowed) and the retry delay in us.
_HIT_RATES = """
local function hit_rates(keys, params, now, slack)
  local refused, retry, new = 0, 0, {}
  local tats = redis.call('MGET', unpack(keys))
  for i = 1, #keys do
    local interval, tol = params[2 * i - 1], params[2 * i]
    local tat = tats[i]
    local base = now
    if tat then
      tat = tonumber(tat)
      if tat > now then base = tat end
    end
    local allow_at = base - tol
    if now < allow_at then
      if refused == 0 then refused = i end
      if allow_at - now > retry then retry = allow_at - now end
    end
    new[i] = base + interval
  end
  if refused == 0 then
    for i = 1, #keys do
      redis.call('SET', keys[i], new[i], 'PX', math.ceil((new[i] - now) / 1000) + slack)
    end
  end
  return refused, retry
end
"""

# KEYS: rate key per check. ARGV: now us, slack ms, then (interval us, tolerance us) per check.
# Returns {first refusing index (1-based, 0 = allowed), retry us}.
_HIT = (
    _HIT_RATES
    + """
local params = {}
for i = 3, #ARGV do params[i - 2] = tonumber(ARGV[i]) end
local refused, retry = hit_rates(KEYS, params, tonumber(ARGV[1]), tonumber(ARGV[2]))
return {refused, retry}
"""
)

# The rolling window of key k, as limits.window_decide; records the event (member) when below
# the limit and record is true. Returns admitted (0/1), the count, and the retry delay in us.
_COUNT_WINDOW = """
local function count_window(k, now, window, limit, record, member, slack)
  redis.call('ZREMRANGEBYSCORE', k, '-inf', now - window)
  local n = redis.call('ZCARD', k)
  if n > limit then
    redis.call('ZREMRANGEBYRANK', k, 0, n - limit - 1)
    n = limit
  end
  if n < limit then
    if record then
      redis.call('ZADD', k, now, member)
      n = n + 1
      local top = redis.call('ZRANGE', k, -1, -1, 'WITHSCORES')
      local ms = math.ceil((tonumber(top[2]) + window - now) / 1000)
      if ms < 1 then ms = 1 end
      redis.call('PEXPIRE', k, ms + slack)
    end
    return 1, n, 0
  end
  local oldest = redis.call('ZRANGE', k, 0, 0, 'WITHSCORES')
  return 0, n, tonumber(oldest[2]) + window - now
end
"""

# KEYS: window key. ARGV: now us, window us, limit, record (0/1), member, slack ms.
# Returns {admitted, count, retry us}.
_WINDOW = (
    _COUNT_WINDOW
    + """
local admitted, n, retry = count_window(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]),
                                        tonumber(ARGV[3]), ARGV[4] == '1', ARGV[5],
                                        tonumber(ARGV[6]))
return {admitted, n, retry}
"""
)

# Every check of one attempt at once (Counters.admit): rates, then leases, then the window,
# with the same functions as the separate scripts. The plan travels as ONE JSON argument (the
# client packs each argument in Python, so dozens of them would cost more than the script), and
# the script names its keys from the tenant prefix: all in the tenant's hash tag, so in the slot
# of the one declared key.
# KEYS: the tenant's calls index (declared for routing; used when there are claims).
# ARGV[1]: JSON [now us, slack ms, tenant prefix, call id, ttl us, rates enforced (0/1), leases
# enforced, window enforced, [(rate key, interval us, tolerance us) per check...], [(claim key,
# limit) per claim...], [window key, window us, limit, member] or [] for none].
# Returns {refused by (0 none, 1 rates, 2 leases, 3 window), rate refused index, rate retry us,
# lease full index, lease already held, window admitted, window count, window retry us,
# leases undone, lease count per claim...}.
_ADMIT = (
    _HIT_RATES
    + _LEASES
    + _COUNT_WINDOW
    + """
local a = cjson.decode(ARGV[1])
local now, slack, tp, cid, ttl = a[1], a[2], a[3], a[4], a[5]
local rates_enf, leases_enf, win_enf = a[6] == 1, a[7] == 1, a[8] == 1
local r, c, w = a[9], a[10], a[11]
local nr, nc = #r / 3, #c / 2
local out = {0, 0, 0, 0, 0, 0, 0, 0, 0}

if nr > 0 then
  local rkeys, params = {}, {}
  for i = 1, nr do
    rkeys[i] = tp .. 'rate:' .. r[3 * i - 2]
    params[2 * i - 1], params[2 * i] = r[3 * i - 1], r[3 * i]
  end
  local refused, retry = hit_rates(rkeys, params, now, slack)
  out[2], out[3] = refused, retry
  if refused > 0 and rates_enf then
    out[1] = 1
    return out
  end
end

local calls, rec, lprefix, lkeys, ckeys, held, lcounts
local decided = false
if nc > 0 then
  calls, rec, lprefix = KEYS[1], tp .. 'call:' .. cid, tp .. 'lease:'
  local limits = {}
  lkeys, ckeys = {}, {}
  for i = 1, nc do
    ckeys[i], limits[i] = c[2 * i - 1], c[2 * i]
    lkeys[i] = lprefix .. ckeys[i]
  end
  local full, already
  held, lcounts, full, already = lease_decide(calls, rec, cid, now, lprefix, lkeys, ckeys,
                                              limits)
  out[4], out[5] = full, already
  for i = 1, nc do out[9 + i] = lcounts[i] end
  if full > 0 then
    if leases_enf then
      out[1] = 2
      return out
    end
  else
    decided = true
    -- the counts once applied, should the window refuse (lease_apply reports them otherwise)
    for i = 1, nc do
      if not held[ckeys[i]] then out[9 + i] = lcounts[i] + 1 end
    end
  end
end

if #w > 0 then
  local admitted, n, retry = count_window(tp .. 'win:' .. w[1], now, w[2], w[3], true, w[4],
                                          slack)
  out[6], out[7], out[8] = admitted, n, retry
  if admitted == 0 and win_enf then
    out[1] = 3
    if decided then out[9] = 1 end
    return out
  end
end

if decided then
  local counts = lease_apply(calls, rec, cid, now, ttl, slack, lprefix, ckeys, held, lcounts)
  for i = 1, nc do out[9 + i] = counts[i] end
end
return out
"""
)


# Spend (LIM-1). Lapsed reservations give their amount back to the month before anything is
# decided. A month's keys (totals, live reservations, marks) live as long as the month's
# totals, so a lapsed reservation is still there to give its amount back however late the
# month is next touched; a call's reservation record lives until its expiry plus the slack.
# Amounts are taken back with 0 - a, never -a: Lua's -0 reaches Redis as "-0", which HINCRBY
# refuses, and a free call holds 0.
_SPEND_PRUNE = """
local function spend_unhold(book, held, amount, cid)
  local a = tonumber(redis.call('HGET', amount, cid) or '0')
  redis.call('HINCRBY', book, 'reserved', 0 - a)
  redis.call('HDEL', amount, cid)
  redis.call('ZREM', held, cid)
end
local function spend_prune(book, held, amount, now)
  local lapsed = redis.call('ZRANGEBYSCORE', held, '-inf', now)
  for _, cid in ipairs(lapsed) do spend_unhold(book, held, amount, cid) end
end
local function spend_totals(book)
  local v = redis.call('HMGET', book, 'settled', 'reserved')
  return tonumber(v[1] or '0'), tonumber(v[2] or '0')
end
"""

# KEYS: res; ARGV: tenant prefix, call id, month, wanted, minimum, limit ('' = none), now, ttl,
# slack (ms), note, month ttl (ms). Reply: granted, settled, reserved, already held.
_RESERVE = (
    _SPEND_PRUNE
    + """
local res, tp, cid = KEYS[1], ARGV[1], ARGV[2]
local now, ttl, slack = tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])
local exp = tonumber(redis.call('HGET', res, 'exp') or '0')
if exp > now then
  local m = redis.call('HGET', res, 'month')
  local book = tp .. 'spend:' .. m
  spend_prune(book, tp .. 'held:' .. m, tp .. 'amount:' .. m, now)
  local settled, reserved = spend_totals(book)
  return {tonumber(redis.call('HGET', res, 'granted')), settled, reserved, 1}
end
local month = ARGV[3]
local book, held, amount = tp .. 'spend:' .. month, tp .. 'held:' .. month, tp .. 'amount:' .. month
spend_prune(book, held, amount, now)
local settled, reserved = spend_totals(book)
local wanted, minimum = tonumber(ARGV[4]), tonumber(ARGV[5])
local granted = wanted
if ARGV[6] ~= '' then
  local room = tonumber(ARGV[6]) - settled - reserved
  if room < minimum then return {0, settled, reserved, 0} end
  if room < granted then granted = room end
end
local until_us = now + ttl
redis.call('HSET', res, 'month', month, 'granted', granted, 'at', now, 'note', ARGV[10],
           'exp', until_us)
redis.call('PEXPIRE', res, math.ceil(ttl / 1000) + slack)
redis.call('ZADD', held, until_us, cid)
redis.call('HSET', amount, cid, granted)
redis.call('HINCRBY', book, 'reserved', granted)
local keep = tonumber(ARGV[11])
for _, k in ipairs({book, held, amount, tp .. 'marks:' .. month}) do
  if redis.call('PTTL', k) < keep then redis.call('PEXPIRE', k, keep) end
end
return {granted, settled, reserved + granted, 0}
"""
)

# KEYS: res; ARGV: tenant prefix, call id, now. Reply: {} or month, granted, at, note.
_RESERVATION = """
local res, now = KEYS[1], tonumber(ARGV[3])
local v = redis.call('HMGET', res, 'month', 'granted', 'at', 'note', 'exp')
if not v[5] or tonumber(v[5]) <= now then return {} end
return {v[1], v[2], v[3], v[4]}
"""

# KEYS: res; ARGV: tenant prefix, call id, now, cost ('' = release without cost), then mark
# name and amount pairs. Reply: {} when nothing is held, else settled, reserved, month, granted,
# at, note, then the names of the marks reached for the first time.
_SETTLE = (
    _SPEND_PRUNE
    + """
local res, tp, cid, now = KEYS[1], ARGV[1], ARGV[2], tonumber(ARGV[3])
local v = redis.call('HMGET', res, 'month', 'granted', 'at', 'note', 'exp')
if not v[5] or tonumber(v[5]) <= now then
  redis.call('DEL', res)
  return {}
end
local month = v[1]
local book, held, amount = tp .. 'spend:' .. month, tp .. 'held:' .. month, tp .. 'amount:' .. month
spend_prune(book, held, amount, now)
if redis.call('ZSCORE', held, cid) then spend_unhold(book, held, amount, cid) end
redis.call('DEL', res)
local out = {}
if ARGV[4] ~= '' then
  redis.call('HINCRBY', book, 'settled', tonumber(ARGV[4]))
end
local settled, reserved = spend_totals(book)
out[1], out[2], out[3], out[4], out[5], out[6] = settled, reserved, v[1], v[2], v[3], v[4]
local marks = tp .. 'marks:' .. month
for i = 5, #ARGV, 2 do
  if settled >= tonumber(ARGV[i + 1]) and redis.call('SADD', marks, ARGV[i]) == 1 then
    out[#out + 1] = ARGV[i]
  end
end
if #out > 6 and redis.call('PTTL', marks) == -1 then
  local keep = redis.call('PTTL', book)
  if keep > 0 then redis.call('PEXPIRE', marks, keep) end
end
return out
"""
)

# KEYS: book; ARGV: held, amount, now. Reply: settled, reserved.
_SPEND_TOTALS = (
    _SPEND_PRUNE
    + """
spend_prune(KEYS[1], ARGV[1], ARGV[2], tonumber(ARGV[3]))
local settled, reserved = spend_totals(KEYS[1])
return {settled, reserved}
"""
)

# A budget month's keys outlive the month by far (reports read them): 100 days.
_MONTH_TTL_MS = 100 * 86_400 * 1000


class RedisCounters(Counters):
    """Counters in Redis, shared by every instance pointed at the same server (or cluster).

    Build it with :meth:`from_url` (or hand it a ``redis.asyncio.Redis`` whose connection
    pool has short timeouts). ``prefix`` namespaces the keys (tests use a random one);
    ``ttl_slack_s`` is added to every key TTL to absorb clock skew between instances.
    """

    def __init__(self, client: Redis, *, prefix: str = "cw", ttl_slack_s: float = 10.0) -> None:
        if not prefix or "{" in prefix or "}" in prefix:
            raise ValueError("prefix must be a non-empty string without braces")
        if not ttl_slack_s >= 0:
            raise ValueError("ttl_slack_s must be >= 0")
        self._client = client
        self._prefix = prefix
        self._slack_ms = int(ttl_slack_s * 1000)
        self._acquire = client.register_script(_ACQUIRE)
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)
        self._active = client.register_script(_ACTIVE)
        self._calls = client.register_script(_CALLS)
        self._hit = client.register_script(_HIT)
        self._window = client.register_script(_WINDOW)
        self._admit = client.register_script(_ADMIT)
        # The per-attempt script: concurrent attempts share one pipeline (pipelining.py).
        self._admit_batched = ScriptPipeline(client, _ADMIT, self._admit.sha)
        self._reserve = client.register_script(_RESERVE)
        self._reservation = client.register_script(_RESERVATION)
        self._settle = client.register_script(_SETTLE)
        self._spend_totals = client.register_script(_SPEND_TOTALS)

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        socket_timeout: float = 0.2,
        connect_timeout: float | None = None,
        retries: int = 1,
        max_connections: int | None = None,
        prefix: str = "cw",
        ttl_slack_s: float = 10.0,
    ) -> RedisCounters:
        """Connect to ``redis://[user:password@]host:port/db`` (or ``rediss://``).

        ``socket_timeout`` bounds every read and write and ``connect_timeout`` (default: the
        same) every connect, so a hung server costs at most about ``(retries + 1)`` timeouts
        before :class:`CountersUnavailable`. ``retries`` retries only on connection errors,
        immediately (a pooled connection the server closed), never on timeouts: a script whose
        reply was lost may have run, and running it again would count twice.
        ``max_connections`` (default 256) bounds the connections of this instance; past it an
        operation waits up to ``socket_timeout`` for one to be free.
        """
        # A blocking pool: past max_connections operations in flight, the next one waits (at
        # most one socket timeout) for a free connection instead of failing at once.
        pool = BlockingConnectionPool.from_url(
            url,
            socket_timeout=socket_timeout,
            socket_connect_timeout=connect_timeout
            if connect_timeout is not None
            else socket_timeout,
            retry=Retry(NoBackoff(), retries, supported_errors=(RedisConnectionError,)),
            max_connections=max_connections if max_connections is not None else 256,
            timeout=socket_timeout,
        )
        return cls(Redis.from_pool(pool), prefix=prefix, ttl_slack_s=ttl_slack_s)

    @property
    def client(self) -> Redis:
        """The underlying client (for tests and health checks)."""
        return self._client

    @property
    def prefix(self) -> str:
        """The key prefix, ``P`` in ``P:{t:T}:...``."""
        return self._prefix

    def tenant_prefix(self, tenant_id: str) -> str:
        """``P:{t:T}:``, the start of every key of the tenant (one Cluster slot)."""
        return f"{self._prefix}:{{t:{tenant_id}}}:"

    # -- leases (LIM-2) ------------------------------------------------------------------------

    async def acquire_leases(
        self,
        tenant_id: str,
        call_id: str,
        claims: Sequence[LeaseClaim],
        ttl_s: float,
        now: float,
    ) -> LeaseOutcome:
        check_tenant_id(tenant_id)
        check_call_id(call_id)
        check_claims(claims)
        check_ttl(ttl_s)
        check_time(now)
        now_us, ttl_us = to_micros(now), to_micros(ttl_s)
        tp = self.tenant_prefix(tenant_id)
        keys = [tp + "calls", tp + "call:" + call_id]
        keys.extend(tp + "lease:" + c.key for c in claims)
        args: list[str | int] = [call_id, now_us, ttl_us, self._slack_ms, tp + "lease:"]
        for c in claims:
            args.extend((c.key, c.limit))
        reply = await self._run(self._acquire, keys, args)
        acquired, full, already = int(reply[0]), int(reply[1]), int(reply[2])
        counts = tuple(int(x) for x in reply[3:])
        if not acquired:
            return LeaseOutcome(False, claims[full - 1].key, counts, None)
        return LeaseOutcome(True, None, counts, from_micros(now_us + ttl_us), bool(already))

    async def renew_leases(self, tenant_id: str, call_id: str, ttl_s: float, now: float) -> bool:
        check_tenant_id(tenant_id)
        check_call_id(call_id)
        check_ttl(ttl_s)
        check_time(now)
        tp = self.tenant_prefix(tenant_id)
        keys = [tp + "calls", tp + "call:" + call_id]
        args: list[str | int] = [
            call_id,
            to_micros(now),
            to_micros(ttl_s),
            self._slack_ms,
            tp + "lease:",
        ]
        return bool(await self._run(self._renew, keys, args))

    async def release_leases(self, tenant_id: str, call_id: str, now: float | None = None) -> bool:
        check_tenant_id(tenant_id)
        check_call_id(call_id)
        if now is not None:
            check_time(now)
        tp = self.tenant_prefix(tenant_id)
        keys = [tp + "calls", tp + "call:" + call_id]
        args: list[str | int] = [call_id, tp + "lease:", "" if now is None else to_micros(now)]
        return bool(await self._run(self._release, keys, args))

    async def active_leases(self, tenant_id: str, key: str, now: float) -> int:
        check_tenant_id(tenant_id)
        check_key(key)
        check_time(now)
        lease_key = self.tenant_prefix(tenant_id) + "lease:" + key
        return int(await self._run(self._active, [lease_key], [to_micros(now)]))

    async def calls_holding(self, tenant_id: str, now: float) -> list[str]:
        check_tenant_id(tenant_id)
        check_time(now)
        calls_key = self.tenant_prefix(tenant_id) + "calls"
        reply = await self._run(self._calls, [calls_key], [to_micros(now)])
        return sorted(_text(x) for x in reply)

    # -- rates (LIM-5) -------------------------------------------------------------------------

    async def hit_rates(
        self, tenant_id: str, checks: Sequence[RateCheck], now: float
    ) -> RateOutcome:
        check_tenant_id(tenant_id)
        check_rate_checks(checks)
        check_time(now)
        tp = self.tenant_prefix(tenant_id)
        keys = [tp + "rate:" + c.key for c in checks]
        args: list[str | int] = [to_micros(now), self._slack_ms]
        for c in checks:
            args.extend((c.rate.interval_us, c.rate.tolerance_us))
        reply = await self._run(self._hit, keys, args)
        refused, retry_us = int(reply[0]), int(reply[1])
        if refused:
            return RateOutcome(False, checks[refused - 1].key, from_micros(retry_us))
        return RateOutcome(True, None, 0.0)

    # -- rolling windows (DIA-4) ---------------------------------------------------------------

    async def count_in_window(
        self,
        tenant_id: str,
        key: str,
        window_s: float,
        limit: int,
        now: float,
        record: bool,
    ) -> WindowOutcome:
        check_tenant_id(tenant_id)
        check_key(key)
        check_window(window_s, limit)
        check_time(now)
        now_us = to_micros(now)
        window_key = self.tenant_prefix(tenant_id) + "win:" + key
        member = f"{now_us}:{os.urandom(8).hex()}"
        args: list[str | int] = [
            now_us,
            to_micros(window_s),
            limit,
            1 if record else 0,
            member,
            self._slack_ms,
        ]
        reply = await self._run(self._window, [window_key], args)
        return WindowOutcome(bool(int(reply[0])), int(reply[1]), limit, from_micros(int(reply[2])))

    # -- one attempt, every check --------------------------------------------------------------

    async def admit(
        self, tenant_id: str, call_id: str, plan: AdmitPlan, now: float
    ) -> AdmitOutcome:
        check_tenant_id(tenant_id)
        check_call_id(call_id)
        check_admit_plan(plan)
        check_time(now)
        if plan.empty:
            return AdmitOutcome(True)
        now_us = to_micros(now)
        ttl_us = to_micros(plan.ttl_s) if plan.claims else 0
        tp = self.tenant_prefix(tenant_id)
        rates, claims, window = plan.rates, plan.claims, plan.window
        rate_args: list[str | int] = []
        for r in rates:
            rate_args.extend((r.key, r.rate.interval_us, r.rate.tolerance_us))
        claim_args: list[str | int] = []
        for c in claims:
            claim_args.extend((c.key, c.limit))
        window_args: list[str | int] = []
        if window is not None:
            member = f"{now_us}:{os.urandom(8).hex()}"
            window_args = [window.key, to_micros(window.window_s), window.limit, member]
        packed = orjson.dumps(
            [
                now_us,
                self._slack_ms,
                tp,
                call_id,
                ttl_us,
                int(plan.rates_enforced),
                int(plan.leases_enforced),
                int(plan.window_enforced),
                rate_args,
                claim_args,
                window_args,
            ]
        )
        raw = await _translate(lambda: self._admit_batched([tp + "calls"], [packed]))
        reply = [int(x) for x in raw]
        stop = _STAGES[reply[0]]
        rate_out: RateOutcome | None = None
        if rates:
            refused, retry_us = reply[1], reply[2]
            rate_out = (
                RateOutcome(False, rates[refused - 1].key, from_micros(retry_us))
                if refused
                else RateOutcome(True, None, 0.0)
            )
        if stop == "rates":
            return AdmitOutcome(False, stop, rate_out)
        lease_out: LeaseOutcome | None = None
        if claims:
            full, counts = reply[3], tuple(reply[9:])
            lease_out = (
                LeaseOutcome(False, claims[full - 1].key, counts, None)
                if full
                else LeaseOutcome(True, None, counts, from_micros(now_us + ttl_us), bool(reply[4]))
            )
        if stop == "leases":
            return AdmitOutcome(False, stop, rate_out, lease_out)
        window_out: WindowOutcome | None = None
        if window is not None:
            window_out = WindowOutcome(
                bool(reply[5]), reply[6], window.limit, from_micros(reply[7])
            )
        return AdmitOutcome(stop is None, stop, rate_out, lease_out, window_out, bool(reply[8]))

    # -- housekeeping --------------------------------------------------------------------------

    # -- spend (LIM-1) -------------------------------------------------------------------------

    async def reserve_spend(
        self,
        tenant_id: str,
        call_id: str,
        month: str,
        wanted_minor: int,
        minimum_minor: int,
        limit_minor: int | None,
        ttl_s: float,
        now: float,
        note: str = "",
    ) -> SpendGrant:
        check_reservation(
            tenant_id, call_id, month, wanted_minor, minimum_minor, limit_minor, ttl_s, now
        )
        tp = self.tenant_prefix(tenant_id)
        args: list[str | int] = [
            tp,
            call_id,
            month,
            wanted_minor,
            minimum_minor,
            "" if limit_minor is None else limit_minor,
            to_micros(now),
            to_micros(ttl_s),
            self._slack_ms,
            note,
            _MONTH_TTL_MS,
        ]
        reply = await self._run(self._reserve, [tp + "res:" + call_id], args)
        granted, settled, reserved, already = (int(x) for x in reply)
        return SpendGrant(granted, settled, reserved, bool(already))

    async def reservation(
        self, tenant_id: str, call_id: str, now: float
    ) -> SpendReservation | None:
        check_tenant_id(tenant_id)
        check_call_id(call_id)
        check_time(now)
        tp = self.tenant_prefix(tenant_id)
        reply = await self._run(
            self._reservation, [tp + "res:" + call_id], [tp, call_id, to_micros(now)]
        )
        if not reply:
            return None
        return _reservation(call_id, reply)

    async def settle_spend(
        self,
        tenant_id: str,
        call_id: str,
        cost_minor: int,
        marks: Sequence[SpendMark],
        now: float,
    ) -> SpendSettlement | None:
        check_tenant_id(tenant_id)
        check_call_id(call_id)
        check_amount("cost_minor", cost_minor)
        check_marks(marks)
        check_time(now)
        tp = self.tenant_prefix(tenant_id)
        args: list[str | int] = [tp, call_id, to_micros(now), cost_minor]
        for mark in marks:
            args.extend((mark.name, mark.amount_minor))
        reply = await self._run(self._settle, [tp + "res:" + call_id], args)
        if not reply:
            return None
        reached = tuple(_text(x) for x in reply[6:])
        return SpendSettlement(
            int(reply[0]), int(reply[1]), reached, _reservation(call_id, reply[2:6])
        )

    async def release_spend(self, tenant_id: str, call_id: str, now: float) -> bool:
        check_tenant_id(tenant_id)
        check_call_id(call_id)
        check_time(now)
        tp = self.tenant_prefix(tenant_id)
        args: list[str | int] = [tp, call_id, to_micros(now), ""]
        return bool(await self._run(self._settle, [tp + "res:" + call_id], args))

    async def spend_totals(self, tenant_id: str, month: str, now: float) -> tuple[int, int]:
        check_tenant_id(tenant_id)
        check_month(month)
        check_time(now)
        tp = self.tenant_prefix(tenant_id)
        args: list[str | int] = [tp + "held:" + month, tp + "amount:" + month, to_micros(now)]
        reply = await self._run(self._spend_totals, [tp + "spend:" + month], args)
        return int(reply[0]), int(reply[1])

    async def close(self) -> None:
        await self._client.aclose()

    async def _run(
        self, script: AsyncScript, keys: list[str], args: Sequence[str | int | bytes]
    ) -> Any:
        return await _translate(lambda: script(keys=keys, args=args))


async def _translate(call: Callable[[], Awaitable[T]]) -> T:
    """Run one Redis call, turning "cannot reach the server" into CountersUnavailable."""
    try:
        return await call()
    except (RedisConnectionError, RedisTimeoutError, OSError, TimeoutError) as exc:
        raise CountersUnavailable(f"redis counters unavailable: {exc}") from exc
    except ResponseError as exc:
        if str(exc).startswith(_UNAVAILABLE_REPLIES):
            raise CountersUnavailable(f"redis counters unavailable: {exc}") from exc
        raise


_STAGES: tuple[AdmitStage | None, ...] = (None, "rates", "leases", "window")


def _reservation(call_id: str, fields: Sequence[Any]) -> SpendReservation:
    """A reservation from the script's reply: month, granted, at (us), note."""
    month, granted, at_us, note = fields
    return SpendReservation(
        call_id, _text(month), int(granted), from_micros(int(at_us)), _text(note)
    )


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
