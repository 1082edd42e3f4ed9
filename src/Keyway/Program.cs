using Keyway.Cli;

// One executable: `keyway serve` runs the server; every other command is a client of its HTTP API.
return await KeywayCli.RunAsync(args);
