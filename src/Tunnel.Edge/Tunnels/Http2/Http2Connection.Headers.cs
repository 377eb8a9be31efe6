namespace Tunnel.Edge.Tunnels.Http2;

/// <summary>
/// Header blocks: gathered over HEADERS and CONTINUATION frames (within the flood bounds of
/// <see cref="Http2HeaderBlock"/>), decoded by the stream they belong to, published under the lock.
/// </summary>
internal sealed partial class Http2Connection
{
    private void OnHeaders(Http2FrameHeader header, ReadOnlySpan<byte> payload)
    {
        if (header.StreamId == 0)
        {
            throw new Http2ConnectionException(Http2ErrorCode.ProtocolError, "A HEADERS frame on stream 0.");
        }

        var fragment = RemovePadding(header, payload);
        if (header.HasFlag(Http2Flags.Priority))
        {
            if (fragment.Length < 5)
            {
                throw new Http2ConnectionException(Http2ErrorCode.FrameSizeError, "A HEADERS frame too short for its priority fields.");
            }

            fragment = fragment[5..];
        }

        var endStream = header.HasFlag(Http2Flags.EndStream);
        if (header.HasFlag(Http2Flags.EndHeaders))
        {
            ProcessHeaderBlock(header.StreamId, fragment, endStream);
            return;
        }

        _headerBlock.Start(header.StreamId, endStream, fragment);
    }

    private void OnContinuation(Http2FrameHeader header, ReadOnlySpan<byte> payload)
    {
        if (_headerBlock.StreamId == 0 || header.StreamId != _headerBlock.StreamId)
        {
            throw new Http2ConnectionException(Http2ErrorCode.ProtocolError, "A CONTINUATION frame that continues no header block.");
        }

        _headerBlock.Continue(payload);
        if (header.HasFlag(Http2Flags.EndHeaders))
        {
            var streamId = _headerBlock.StreamId;
            _headerBlock.End();
            try
            {
                ProcessHeaderBlock(streamId, _headerBlock.Bytes, _headerBlock.EndStream);
            }
            finally
            {
                _headerBlock.Dispose();
            }
        }
    }

    /// <summary>
    /// A complete header block: decoded by its stream outside the lock (only this loop touches the
    /// decoder and a stream's block state), then published under it.
    /// </summary>
    private void ProcessHeaderBlock(int streamId, ReadOnlySpan<byte> block, bool endStream)
    {
        Http2Stream? stream;
        lock (Sync)
        {
            if (!_streams.TryGetValue(streamId, out stream) || stream.ReceiveClosed)
            {
                if (IsIdleStreamLocked(streamId))
                {
                    throw IdleStreamError(Http2FrameType.Headers, streamId);
                }

                stream = null;
            }
        }

        if (stream is null)
        {
            // A stream already closed or reset: decoded all the same, so the HPACK table stays in step.
            _decoder.Decode(block, DiscardedHeaders.Instance);
            return;
        }

        stream.BeginHeaderBlock(_settings.MaxResponseHeaderBytes, _recentValues);
        _decoder.Decode(block, stream);
        lock (Sync)
        {
            if (stream.IsOpen)
            {
                PublishHeaderBlockLocked(stream, endStream);
            }
        }
    }

    private void PublishHeaderBlockLocked(Http2Stream stream, bool endStream)
    {
        switch (stream.EndHeaderBlockLocked(endStream, out var malformed))
        {
            case HeaderBlockOutcome.TooLarge:
                StreamErrorLocked(stream, Http2ErrorCode.Cancel,
                    $"The origin's response headers exceed the edge's limit of {_settings.MaxResponseHeaderBytes / 1024} KiB.", HttpRequestError.ConfigurationLimitExceeded);
                return;
            case HeaderBlockOutcome.Malformed:
                StreamErrorLocked(stream, Http2ErrorCode.ProtocolError, $"The origin's response is malformed: {malformed}.");
                return;
            case HeaderBlockOutcome.Informational:
                return;
        }

        if (endStream)
        {
            stream.ReceiveClosed = true;
            CloseIfDoneLocked(stream);
        }

        stream.WakeReaderLocked();
    }

    /// <summary>Where the fields of a block for a stream no longer open go: nowhere.</summary>
    private sealed class DiscardedHeaders : IHpackHeaderSink
    {
        public static readonly DiscardedHeaders Instance = new();

        public void OnHeader(ReadOnlySpan<byte> name, ReadOnlySpan<byte> value, int staticNameIndex)
        {
        }

        public void OnFieldTooLarge(int atLeastBytes)
        {
        }
    }
}
