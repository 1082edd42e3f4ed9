namespace Keyway.Secrets;

/// <summary>
/// An envelope could not be decrypted: it was tampered with, truncated, copied from another row
/// or field, or encrypted under a data key this process does not hold. The message names only
/// the associated data (a non-secret label such as <c>variable:production:API_TOKEN:v3:value</c>).
/// </summary>
internal sealed class DecryptionException : Exception
{
    public DecryptionException()
    {
    }

    public DecryptionException(string message)
        : base(message)
    {
    }

    public DecryptionException(string message, Exception innerException)
        : base(message, innerException)
    {
    }

    internal DecryptionException(string associatedData, DecryptionFailure reason, Exception? innerException = null)
        : base(
            $"The encrypted value for {associatedData} could not be authenticated "
            + "(tampered, copied from another row, or encrypted under another key).",
            innerException)
    {
        AssociatedData = associatedData;
        Reason = reason;
    }

    /// <summary>The label the value was bound to.</summary>
    public string? AssociatedData { get; }

    /// <summary>
    /// Why it failed. <see cref="DecryptionFailure.UnknownDataKey"/> can mean another replica
    /// rotated the data key: reload the key ring and try once more.
    /// </summary>
    public DecryptionFailure Reason { get; }
}

internal enum DecryptionFailure
{
    /// <summary>The tag did not verify: tampered, wrong associated data, or wrong key.</summary>
    Authentication,

    /// <summary>The envelope names a data key this key ring does not hold.</summary>
    UnknownDataKey,

    /// <summary>Too short, or an envelope version this build does not read.</summary>
    Malformed,
}
