namespace Keyway.Secrets;

/// <summary>
/// The master key configuration is unusable: missing, malformed, too widely readable, or not the
/// key the stored data was encrypted with. Raised at start so the process fails loudly before the
/// first request. The message names the source (the variable or the file) and what is wrong, and
/// never contains key material.
/// </summary>
internal sealed class MasterKeyException : Exception
{
    public MasterKeyException()
    {
    }

    public MasterKeyException(string message)
        : base(message)
    {
    }

    public MasterKeyException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
