/**
 * RtoEstimator (transport/rto.ts) on its own: RFC 6298's SRTT, RTTVAR and
 * RTO with exact numbers (every sample and weight here is a binary
 * fraction, so the expected values are exact), its clamps and the backoff.
 * Karn's rule, which is the sender's, is tested in snw_sender_test.ts.
 */

import { equal } from "node:assert/strict";
import { RtoEstimator } from "../transport/rto.ts";

Deno.test("rto: before any sample the RTO is the initial value, 100 ms by default, kept within the bounds", () => {
  const estimator = new RtoEstimator();
  equal(estimator.rto, 100);
  equal(estimator.srtt, undefined);
  equal(new RtoEstimator({ initialMs: 40 }).rto, 40);
  equal(
    new RtoEstimator({ initialMs: 1000 }).rto,
    250,
    "above the default 250",
  );
  equal(new RtoEstimator({ initialMs: 0 }).rto, 1, "below the default 1");
  equal(new RtoEstimator({ initialMs: 40, minMs: 50 }).rto, 50);
  equal(new RtoEstimator({ initialMs: 400, maxMs: 300 }).rto, 300);
});

Deno.test("rto: the first sample R gives SRTT = R, RTTVAR = R/2 and RTO = SRTT + 4 RTTVAR, whatever the initial RTO (RFC 6298 2.2)", () => {
  for (const initialMs of [5, 100, 250]) {
    const estimator = new RtoEstimator({ initialMs });
    estimator.sample(20);
    equal(estimator.srtt, 20);
    equal(estimator.rto, 60, `initial ${initialMs} ms`); // 20 + 4 * 10
  }
});

Deno.test("rto: later samples are smoothed with alpha 1/8 and beta 1/4, RTTVAR from the SRTT before this sample (RFC 6298 2.3)", () => {
  const estimator = new RtoEstimator();
  estimator.sample(20); // SRTT 20, RTTVAR 10
  estimator.sample(10);
  // RTTVAR = 3/4 * 10 + 1/4 * |20 - 10| = 10; SRTT = 7/8 * 20 + 1/8 * 10
  equal(estimator.srtt, 18.75);
  equal(estimator.rto, 58.75);
  estimator.sample(30);
  // RTTVAR = 3/4 * 10 + 1/4 * |18.75 - 30| = 10.3125
  // SRTT = 7/8 * 18.75 + 1/8 * 30 = 20.15625
  equal(estimator.srtt, 20.15625);
  equal(estimator.rto, 20.15625 + 4 * 10.3125);
  estimator.sample(20.15625); // no deviation: RTTVAR shrinks by a quarter
  equal(estimator.srtt, 20.15625);
  equal(estimator.rto, 20.15625 + 4 * 7.734375);
});

Deno.test("rto: the variance term 4 RTTVAR counts at least 1 ms, the clock granularity G of RFC 6298", () => {
  const estimator = new RtoEstimator();
  estimator.sample(0.25); // RTTVAR 0.125: 4 RTTVAR = 0.5 < 1
  equal(estimator.srtt, 0.25);
  equal(estimator.rto, 1.25);
  for (let i = 0; i < 10; i++) estimator.sample(0.25); // RTTVAR shrinks on
  equal(estimator.rto, 1.25);
});

Deno.test("rto: the RTO is clamped to minMs and maxMs, while SRTT keeps the measured value", () => {
  const floored = new RtoEstimator({ minMs: 5 });
  floored.sample(0.25);
  equal(floored.srtt, 0.25);
  equal(floored.rto, 5); // 1.25 raised to the floor
  const capped = new RtoEstimator(); // maxMs 250
  capped.sample(200);
  equal(capped.srtt, 200);
  equal(capped.rto, 250); // 600 lowered to the ceiling
  const wide = new RtoEstimator({ maxMs: 1000 });
  wide.sample(200);
  equal(wide.rto, 600);
  // The clamp is on the RTO only: the next sample smooths the SRTT of 200,
  // RTTVAR 3/4 * 100 + 1/4 * 160 = 115, SRTT 7/8 * 200 + 1/8 * 40 = 180.
  capped.sample(40);
  equal(capped.srtt, 180);
  equal(capped.rto, 250); // 180 + 4 * 115 = 640
});

Deno.test("rto: backedOff doubles a wait up to maxMs (at least minMs) and leaves the RTO of the next packet as it was", () => {
  const estimator = new RtoEstimator({ initialMs: 1 });
  const waits = [1];
  while (waits.length < 10) waits.push(estimator.backedOff(waits.at(-1)!));
  equal(waits.join(), "1,2,4,8,16,32,64,128,250,250");
  equal(estimator.rto, 1, "the backoff is not kept");
  equal(new RtoEstimator({ minMs: 10 }).backedOff(2), 10);
  equal(new RtoEstimator({ maxMs: 1000 }).backedOff(300), 600);
  estimator.sample(20);
  equal(estimator.backedOff(estimator.rto), 120);
  equal(estimator.rto, 60);
});
