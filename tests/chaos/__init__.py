"""Chaos tests: one system at a time misbehaves while the other three serve.

What runs: the four real sandbox apps (``sandbox.<system>.create_app``, 20 demo customers,
data in a temporary directory, no webhooks) on free loopback ports, served once for the
package (``conftest.py``) and reset before every test (chaos off, request log cleared,
data seeded again); the sandboxes' own built-in rate limits are lifted so that only the
chaos switches and the actor's policy decide what happens. Each test builds a fresh
``actors.Systems`` from ``policies/systems.toml`` pointed at those ports, with the real
connectors; only the system under test gets the test's policy (small breaker reset
timeouts, one try, few workers, a tight rate). Chaos comes from the sandbox's own
``PUT /_sandbox/chaos``; "what reached the system" is the sandbox's own
``GET /_sandbox/stats`` (request count and arrival timestamps). Reads are distinct
one-customer ``GetCustomers`` so that none is coalesced and each is one vendor call.
Waits are on conditions with deadlines, or until a time the breaker itself named.

What each test proves (``[system]`` = parametrized over erp, billing, crm, support):

test_breaker.py
- ``test_outage_opens_the_breaker_and_open_asks_are_free[system]``: with ``outage`` on,
  the breaker stays closed for fail_max - 1 failures (each a ``SystemUnavailable`` from a
  real call) and opens on the fail_max-th; then 200 asks are answered ``BreakerOpen``
  (code ``SYSTEM_UNAVAILABLE``) with a median of under 1 ms each, and the sandbox's
  request count does not move; the other three systems answer normally meanwhile, and
  the last good answer is there to fall back to, with its age.
- ``test_an_unreachable_system_opens_the_breaker[system]``: nothing listening on the
  port (connection refused) counts as a failure like a 503 and opens the breaker.
- ``test_half_open_lets_only_the_trial_calls_through_and_closes_after_the_threshold
  [system]``: after the reset timeout, 16 concurrent asks against a recovered but slow
  system let exactly ``half_open_calls`` (2) calls reach it, the rest are refused; it
  stays half-open until ``success_threshold`` (3) trial successes, then closes and
  everything flows.
- ``test_a_failed_trial_reopens_the_breaker[system]``: a trial that fails (a 500) opens
  the breaker again for a fresh reset timeout, with one call made for 16 asks; a later
  successful trial closes it.

test_throttle.py
- ``test_a_throttle_storm_is_met_with_back_off_not_hammering[system]``: the vendor's own
  answer (SAP 503 + Retry-After, Stripe 429 + Stripe-Should-Retry, Salesforce 403
  REQUEST_LIMIT_EXCEEDED, Zendesk 429 + Retry-After) gives ``Throttled`` after one call;
  a storm of 16 concurrent asks during the pause is answered ``THROTTLED`` with no call
  at all; 16 patient asks (deadline past the pause) make no call inside the pause and at
  most one per worker after it; the breaker stays closed; once the vendor relents the
  next call waits out the pause and succeeds. (The CRM connector's own 5 s pause is
  shortened to 1 s for speed: Salesforce names no delay.)
- ``test_a_burst_of_reads_never_exceeds_the_policy_rate[system]``: 20 concurrent reads at
  a policy of 10/s, burst 3: the sandbox's arrival timestamps show at most burst + rate
  calls in every sliding 1 s window, and the leaky bucket's bound at every scale.
- ``test_a_burst_of_batched_reads_never_exceeds_the_policy_rate[system]``: the same bound
  for reads of three customers each, however the connector turns a message into vendor
  calls (the billing connector makes one call per customer: Stripe has no batch
  retrieve). This failed for billing when the actor took one token per message; it
  passes since the actor paces every HTTP call (``HttpConnector.pace``).

test_deadlines.py
- ``test_latency_past_the_deadline_times_out_and_cancels_the_call[system]``: a 2 s answer
  against a 0.3 s ask gives ``SystemTimeout`` (``SYSTEM_TIMEOUT``) within 0.25 s of the
  deadline; the actor's in-flight count is back to 0 at once and its only worker serves
  the next ask at once (the slow call was cancelled, not awaited); it counts as a failure.
- ``test_malformed_bodies_are_malformed_response_and_count_as_breaker_failures[system]``:
  ``malformed_rate: 1.0`` gives ``MalformedResponse``; fail_max of them open the breaker.

test_mailbox.py
- ``test_interactive_asks_are_served_before_queued_batch_asks[system]``: with the one
  worker held by a slow call, 4 BATCH asks queued first and 4 INTERACTIVE asks queued
  after them complete in exactly this order: the INTERACTIVE ones (FIFO), then the BATCH.
- ``test_a_saturated_actor_drops_expired_asks_and_sheds_the_least_urgent[system]``: with
  the one worker busy and the mailbox full of BATCH asks, two INTERACTIVE asks shed the two
  newest BATCH ones (``THROTTLED``), the two older BATCH ones expire in the mailbox
  (``SystemTimeout``), and neither kind ever reaches the system.
- ``test_asks_that_expire_in_the_mailbox_are_counted_as_expired``: asks dropped unsent
  for their deadline show in ``StatsSnapshot.expired`` (they once counted only tells).
- ``test_stopping_an_actor_under_load_answers_every_ask_and_leaves_nothing_running
  [system]``: stopping one actor with 2 calls in flight and 10 queued answers all 12
  asks ``ActorStopped`` within 0.5 s (the calls would take 3 s), its tasks end, later
  asks are refused, the other three keep serving, and only the 2 in-flight calls ever
  reached the system.
- ``test_leaving_systems_under_load_answers_every_ask_and_leaves_no_task``: leaving
  ``Systems`` with all four loaded answers every ask ``ActorStopped`` and leaves no task
  of ours behind (the sandbox servers' own handlers may still be sleeping).
"""
