//! The framing of a gossip message: one or more items, in order.
//!
//! ```text
//! message = count:u32-le  item*      (1 ≤ count ≤ MAX_ITEMS, no trailing bytes)
//! item    = len:u32-le    bytes[len]
//! ```
//!
//! Receivers take the items as slices of the received buffer (no copy).

use bytes::Bytes;
use sha2::{Digest, Sha256};

/// Most items in one message.
pub(crate) const MAX_ITEMS: usize = 1024;
/// Bytes of framing per message and per item.
pub(crate) const HEADER_BYTES: usize = 4;

/// The items of a well-formed message, borrowed from it; `None` if it is malformed.
pub(crate) fn items(data: &[u8]) -> Option<Vec<&[u8]>> {
    let (count, mut rest) = take_u32(data)?;
    if count == 0 || count > MAX_ITEMS {
        return None;
    }
    // Every item needs at least its length prefix: refuse impossible counts before allocating.
    if count > rest.len() / HEADER_BYTES {
        return None;
    }
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let (len, r) = take_u32(rest)?;
        if len > r.len() {
            return None;
        }
        let (item, r) = r.split_at(len);
        out.push(item);
        rest = r;
    }
    rest.is_empty().then_some(out)
}

/// The items of a well-formed message as slices of `data`; `None` if it is malformed.
pub(crate) fn split(data: &Bytes) -> Option<Vec<Bytes>> {
    Some(
        items(data)?
            .into_iter()
            .map(|i| data.slice_ref(i))
            .collect(),
    )
}

/// The message carrying `items` (at least one, at most [`MAX_ITEMS`]).
pub(crate) fn encode(items: &[Bytes]) -> Vec<u8> {
    let size = HEADER_BYTES + items.iter().map(|i| HEADER_BYTES + i.len()).sum::<usize>();
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(&(items.len() as u32).to_le_bytes());
    for i in items {
        out.extend_from_slice(&(i.len() as u32).to_le_bytes());
        out.extend_from_slice(i);
    }
    out
}

/// Packs `items`, in order, into as few messages as fit `max_message_bytes` and [`MAX_ITEMS`].
/// An item too big to fit even alone still gets its own message (and the transport refuses
/// it), so nothing is silently merged away.
pub(crate) fn pack(items: &[Bytes], max_message_bytes: usize) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut size = HEADER_BYTES;
    for (i, item) in items.iter().enumerate() {
        let add = HEADER_BYTES + item.len();
        let count = i - start;
        if count > 0 && (size + add > max_message_bytes || count == MAX_ITEMS) {
            out.push(encode(&items[start..i]));
            start = i;
            size = HEADER_BYTES;
        }
        size += add;
    }
    if start < items.len() {
        out.push(encode(&items[start..]));
    }
    out
}

/// The message id of a malformed message: a tagged hash of its bytes, so that duplicates of
/// it are still recognised (and its sender penalised once per distinct message).
pub(crate) fn malformed_id(data: &[u8]) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update(b"lockstep:gossip:malformed");
    h.update(data);
    h.finalize().to_vec()
}

fn take_u32(data: &[u8]) -> Option<(usize, &[u8])> {
    let (head, rest) = data.split_first_chunk::<4>()?;
    Some((u32::from_le_bytes(*head) as usize, rest))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn b(s: &[u8]) -> Bytes {
        Bytes::copy_from_slice(s)
    }

    #[test]
    fn malformed_messages_are_refused() {
        let good = encode(&[b(b"ab"), b(b"")]);
        assert_eq!(items(&good).unwrap(), vec![&b"ab"[..], &b""[..]]);
        // Truncated anywhere, or with a trailing byte.
        for cut in 0..good.len() {
            assert!(items(&good[..cut]).is_none(), "cut at {cut}");
        }
        let mut long = good.clone();
        long.push(0);
        assert!(items(&long).is_none());
        // No items, too many items, a count no buffer of this size can hold.
        assert!(items(&0u32.to_le_bytes()).is_none());
        let mut many = ((MAX_ITEMS + 1) as u32).to_le_bytes().to_vec();
        many.extend(std::iter::repeat_n(0u8, 4 * (MAX_ITEMS + 1)));
        assert!(items(&many).is_none());
        assert!(items(&u32::MAX.to_le_bytes()).is_none());
        // A length past the end.
        let mut past = 1u32.to_le_bytes().to_vec();
        past.extend_from_slice(&100u32.to_le_bytes());
        past.extend_from_slice(b"short");
        assert!(items(&past).is_none());
    }

    #[test]
    fn an_item_too_big_for_any_message_travels_alone() {
        let items = [b(&[1; 10]), b(&[2; 100]), b(&[3; 10])];
        let msgs = pack(&items, 50);
        assert_eq!(msgs.len(), 3);
        assert_eq!(
            split(&Bytes::from(msgs[1].clone())).unwrap(),
            vec![items[1].clone()]
        );
    }

    proptest! {
        /// Packing keeps every item, in order, within the size and count limits (unless an
        /// item alone is too big), and every message decodes.
        #[test]
        fn pack_then_split_gives_back_the_items(
            sizes in proptest::collection::vec(0usize..300, 1..2500),
            max in 64usize..4096,
        ) {
            let items: Vec<Bytes> = sizes
                .iter()
                .enumerate()
                .map(|(i, n)| Bytes::from(vec![i as u8; *n]))
                .collect();
            let msgs = pack(&items, max);
            let mut back = Vec::new();
            for m in msgs {
                let parts = split(&Bytes::from(m.clone())).unwrap();
                prop_assert!(parts.len() <= MAX_ITEMS);
                prop_assert!(m.len() <= max || parts.len() == 1);
                back.extend(parts);
            }
            prop_assert_eq!(back, items);
        }
    }
}
