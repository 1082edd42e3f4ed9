// The upstream of the end-to-end harness (bench/harness/run.sh): GET /hello answers a fixed
// 64-byte JSON body. No logging, no server header. Usage: Keyway.Bench.Upstream <port>
//
// It is also a minimal OAuth 2.0 token endpoint for the credential runs: POST /token answers a
// client_credentials token (?expiresIn=seconds, default 3600; ?delayMs=n holds the answer, so a
// storm of requests finds the refresh in flight), counted per ?counter=name; GET /token-count
// ?counter=name says how many token requests that counter saw.
using System.Collections.Concurrent;
using System.Globalization;
using System.Text;

var port = args.Length > 0 ? int.Parse(args[0], CultureInfo.InvariantCulture) : 5601;
var body = Encoding.UTF8.GetBytes("{\"message\":\"hello\",\"from\":\"upstream\",\"padding\":\"0123456789abcd\"}");
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
