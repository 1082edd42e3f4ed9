using Keyway.Cli;
using Keyway.Hosting;

// `keyway serve` on Linux first restarts itself in place with the runtime settings .NET reads only
// from the environment (Hosting/RuntimeTuning.cs); this returns at once otherwise.
RuntimeTuning.Apply(args);

// One executable: `keyway serve` runs the server; every other command is a client of its HTTP API.
return await KeywayCli.RunAsync(args);
