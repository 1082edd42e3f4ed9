// The upstream of the end-to-end harness (bench/harness/run.sh): GET /hello answers a fixed
// 64-byte JSON body. No logging, no server header. Usage: Keyway.Bench.Upstream <port>
//
// It is also a minimal OAuth 2.0 token endpoint for the credential runs: POST /token answers a
// client_credentials token (?expiresIn=seconds, default 3600; ?delayMs=n holds the answer, so a
// storm of requests finds the refresh in flight), counted per ?counter=name; GET /token-count
// ?counter=name says how many token requests that counter saw.
//
// GET /big?bytes=n answers n bytes of JSON-like text (default 10 MB) with its Content-Length, written
// in 64 KB chunks: the harness's stream section measures what redacting a large answer costs.
using System.Collections.Concurrent;
using System.Globalization;
using System.Text;

var port = args.Length > 0 ? int.Parse(args[0], CultureInfo.InvariantCulture) : 5601;
var body = Encoding.UTF8.GetBytes("{\"message\":\"hello\",\"from\":\"upstream\",\"padding\":\"0123456789abcd\"}");
var chunk = BigChunk();
var tokenRequests = new ConcurrentDictionary<string, int>(StringComparer.Ordinal);

var builder = WebApplication.CreateSlimBuilder();
builder.Logging.ClearProviders();
builder.WebHost.ConfigureKestrel(k =>
{
    k.AddServerHeader = false;
    k.Listen(System.Net.IPAddress.Loopback, port);
});

var app = builder.Build();
app.MapGet("/hello", async context =>
{
    context.Response.ContentType = "application/json";
    context.Response.ContentLength = body.Length;
    await context.Response.Body.WriteAsync(body);
});
app.MapGet("/big", async (HttpContext context, long? bytes) =>
{
    var left = bytes ?? 10 * 1024 * 1024;
    context.Response.ContentType = "application/json";
    context.Response.ContentLength = left;
    while (left > 0)
    {
        var n = (int)Math.Min(left, chunk.Length);
        await context.Response.Body.WriteAsync(chunk.AsMemory(0, n), context.RequestAborted);
        left -= n;
    }
});
app.MapPost("/token", async (HttpContext context, string? counter, int? expiresIn, int? delayMs) =>
{
    var count = tokenRequests.AddOrUpdate(counter ?? "", 1, (_, n) => n + 1);
    if (delayMs is > 0)
    {
        await Task.Delay(delayMs.Value, context.RequestAborted);
    }

    return Results.Json(new Dictionary<string, object>
    {
        ["access_token"] = string.Create(CultureInfo.InvariantCulture, $"bench-access-{counter}-{count}-{Guid.NewGuid():N}"),
        ["token_type"] = "Bearer",
        ["expires_in"] = expiresIn ?? 3600,
    });
});
app.MapGet("/token-count", (string? counter) => Results.Text(
    (tokenRequests.TryGetValue(counter ?? "", out var n) ? n : 0).ToString(CultureInfo.InvariantCulture)));
await app.RunAsync();

// 64 KB of items such as an API's list answer holds: names, ids, numbers, no secret.
static byte[] BigChunk()
{
    var text = new StringBuilder(64 * 1024 + 256);
    for (var i = 0; text.Length < 64 * 1024; i++)
    {
        text.Append(CultureInfo.InvariantCulture, $"{{\"id\":{i},\"name\":\"item-{i:x6}\",\"owner\":\"team-{i % 17}\",\"score\":{i * 7 % 1000}.{i % 10}}},");
    }

    return Encoding.UTF8.GetBytes(text.ToString(0, 64 * 1024));
}
