//! Fetching items by id from peers (libp2p request-response on the gossip swarm).
//!
//! A validator that receives a proposal naming bundles it does not hold (gossip is a moment
//! behind, or its pool was full) asks peers for them by id. Ids are 32 bytes and opaque here;
//! the node checks that what comes back hashes to what it asked for.
//!
//! ```text
//! request  = id[32]*                      (1 ≤ count ≤ MAX_IDS, no trailing bytes)
//! response = count:u32-le  entry[count]   (count = the request's count)
//! entry    = len:u32-le    bytes[len]     (len 0: the peer does not hold that item)
//! ```

use async_trait::async_trait;
use bytes::Bytes;
use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::StreamProtocol;
use std::io;

/// The fetch protocol's name.
pub const PROTOCOL: StreamProtocol = StreamProtocol::new("/lockstep/fetch/1");
/// Most ids in one request.
pub const MAX_IDS: usize = 16_384;

/// The items this node can hand out, by id.
pub trait ItemStore: Send + Sync + 'static {
    /// One entry per id, in order: the item, or `None` if this node does not hold it.
    fn lookup(&self, ids: &[[u8; 32]]) -> Vec<Option<Bytes>>;
}

/// A store that holds nothing (a node that serves no fetches; tests).
pub struct NoItems;

impl ItemStore for NoItems {
    fn lookup(&self, ids: &[[u8; 32]]) -> Vec<Option<Bytes>> {
        vec![None; ids.len()]
    }
}

/// The request's wire form.
pub fn encode_request(ids: &[[u8; 32]]) -> Vec<u8> {
    ids.concat()
}

/// The ids of a well-formed request; `None` if it is malformed.
pub fn decode_request(data: &[u8]) -> Option<Vec<[u8; 32]>> {
    if data.is_empty() || !data.len().is_multiple_of(32) || data.len() / 32 > MAX_IDS {
        return None;
    }
    Some(
        data.chunks_exact(32)
            .map(|c| {
                let mut id = [0u8; 32];
                id.copy_from_slice(c);
                id
            })
            .collect(),
    )
}

/// The response's wire form. Items past `max_bytes` in total are left out (sent as absent),
/// so a response never exceeds what the asker reads.
pub fn encode_response(items: &[Option<Bytes>], max_bytes: usize) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&(items.len() as u32).to_le_bytes());
    let mut total = 0usize;
    for item in items {
        match item {
            Some(b) if !b.is_empty() && total + b.len() <= max_bytes => {
                total += b.len();
                out.extend_from_slice(&(b.len() as u32).to_le_bytes());
                out.extend_from_slice(b);
            }
            _ => out.extend_from_slice(&0u32.to_le_bytes()),
        }
    }
    out
}

/// The entries of a well-formed response of `expected` entries, as slices of `data`; `None`
/// if it is malformed.
pub fn decode_response(data: &Bytes, expected: usize) -> Option<Vec<Option<Bytes>>> {
    let take = |d: &[u8], at: usize| -> Option<usize> {
        let b = d.get(at..at + 4)?;
        Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    let count = take(data, 0)?;
    if count != expected {
        return None;
    }
    let mut at = 4;
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let len = take(data, at)?;
        at += 4;
        if len == 0 {
            out.push(None);
            continue;
        }
        if len > data.len() - at {
            return None;
        }
        out.push(Some(data.slice(at..at + len)));
        at += len;
    }
    (at == data.len()).then_some(out)
}

/// The request-response codec: bounded reads, the formats above.
#[derive(Clone)]
pub struct FetchCodec {
    /// Most bytes of items in one response.
    pub max_response_bytes: usize,
}

impl FetchCodec {
    fn response_limit(&self) -> u64 {
        (self.max_response_bytes + 4 * (MAX_IDS + 1)) as u64
    }
}

async fn read_bounded<T: AsyncRead + Unpin + Send>(io: &mut T, limit: u64) -> io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    io.take(limit + 1).read_to_end(&mut buf).await?;
    if buf.len() as u64 > limit {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "fetch message too large",
        ));
    }
    Ok(buf)
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

/// A request as it travels: the ids asked for.
pub type Request = Vec<[u8; 32]>;
/// A response as it arrives, checked only for framing: raw bytes (the asker decodes them
/// against its request).
pub type Response = Bytes;

#[async_trait]
impl libp2p::request_response::Codec for FetchCodec {
    type Protocol = StreamProtocol;
    type Request = Request;
    type Response = Response;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Request>
    where
        T: AsyncRead + Unpin + Send,
    {
        let data = read_bounded(io, (MAX_IDS * 32) as u64).await?;
        decode_request(&data).ok_or_else(|| invalid("malformed fetch request"))
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Response>
    where
        T: AsyncRead + Unpin + Send,
    {
        Ok(Bytes::from(read_bounded(io, self.response_limit()).await?))
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: Request,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        io.write_all(&encode_request(&req)).await?;
        io.close().await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: Response,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        io.write_all(&res).await?;
        io.close().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn responses_round_trip_within_the_byte_budget(
            items in proptest::collection::vec(
                proptest::option::of(proptest::collection::vec(any::<u8>(), 1..200)),
                0..40,
            ),
            max_bytes in 0usize..3000,
        ) {
            let items: Vec<Option<Bytes>> = items.into_iter().map(|i| i.map(Bytes::from)).collect();
            let wire = Bytes::from(encode_response(&items, max_bytes));
            let back = decode_response(&wire, items.len()).expect("well-formed");
            let mut total = 0;
            for (sent, got) in items.iter().zip(&back) {
                if let Some(g) = got {
                    // Whatever came back is exactly what was there, in its place.
                    prop_assert_eq!(Some(g), sent.as_ref());
                    total += g.len();
                }
            }
            prop_assert!(total <= max_bytes);
            // Leaving items out only happens when the budget is spent.
            let all: usize = items.iter().flatten().map(|b| b.len()).sum();
            if all <= max_bytes {
                prop_assert_eq!(back, items);
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic_the_decoders(data in proptest::collection::vec(any::<u8>(), 0..300), n in 0usize..10) {
            let _ = decode_request(&data);
            let _ = decode_response(&Bytes::from(data), n);
        }
    }

    #[test]
    fn malformed_requests_and_responses_are_refused() {
        assert!(decode_request(&[]).is_none());
        assert!(decode_request(&[0; 33]).is_none());
        assert!(decode_request(&vec![0; 32 * (MAX_IDS + 1)]).is_none());
        assert_eq!(decode_request(&[7; 64]), Some(vec![[7; 32], [7; 32]]));
        let ok = Bytes::from(encode_response(
            &[Some(Bytes::from_static(b"ab")), None],
            100,
        ));
        assert!(decode_response(&ok, 2).is_some());
        // Wrong count, a length past the end, trailing bytes.
        assert!(decode_response(&ok, 3).is_none());
        assert!(decode_response(&ok.slice(..ok.len() - 1), 2).is_none());
        let mut trailing = ok.to_vec();
        trailing.push(0);
        assert!(decode_response(&Bytes::from(trailing), 2).is_none());
    }
}
