// The upstream of the end-to-end harness (bench/harness/run.sh): GET /hello answers a fixed
// 64-byte JSON body. No logging, no server header. Usage: Keyway.Bench.Upstream <port>
using System.Globalization;
using System.Text;

var port = args.Length > 0 ? int.Parse(args[0], CultureInfo.InvariantCulture) : 5601;
var body = Encoding.UTF8.GetBytes("{\"message\":\"hello\",\"from\":\"upstream\",\"padding\":\"0123456789abcd\"}");

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
await app.RunAsync();
