// The baseline of the end-to-end harness (bench/harness/run.sh): a plain YARP direct forwarder,
// no auth, no audit, no logging. Usage: Keyway.Bench.Yarp <port> <upstream base URL>
using System.Globalization;

var port = args.Length > 0 ? int.Parse(args[0], CultureInfo.InvariantCulture) : 5602;
var upstream = args.Length > 1 ? args[1] : "http://127.0.0.1:5601";

var builder = WebApplication.CreateSlimBuilder();
builder.Logging.ClearProviders();
builder.WebHost.ConfigureKestrel(k =>
{
    k.AddServerHeader = false;
    k.Listen(System.Net.IPAddress.Loopback, port);
});
builder.Services.AddHttpForwarder();

var app = builder.Build();
app.MapForwarder("/{**catch-all}", upstream);
await app.RunAsync();
