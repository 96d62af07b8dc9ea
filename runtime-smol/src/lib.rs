//! lonc-smol: the async lonc daemon on smol. (Skeleton: built out by the lonc-smol issue.)
#![warn(missing_docs)]
