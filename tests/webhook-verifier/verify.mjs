// Verifies Keyway's webhook deliveries with the standardwebhooks package, an implementation
// independent of Keyway's. Reads a JSON array of {secret, id, timestamp, signature, body} on stdin
// and writes one JSON array of {ok, error?, type?} to stdout, in the same order.
import { Webhook } from "standardwebhooks";

let input = "";
for await (const chunk of process.stdin) input += chunk;
const results = JSON.parse(input).map(({ secret, id, timestamp, signature, body }) => {
  try {
    const payload = new Webhook(secret).verify(body, {
      "webhook-id": id,
      "webhook-timestamp": String(timestamp),
      "webhook-signature": signature,
    });
    return { ok: true, type: payload.type };
  } catch (e) {
    return { ok: false, error: String(e.message ?? e) };
  }
});
process.stdout.write(JSON.stringify(results));
