//! One `SdkConfig` for every AWS client, from the SDK's default chain plus Lethe's
//! overrides (endpoint for emulators and S3-compatible servers, region).

use aws_config::meta::region::RegionProviderChain;
use aws_config::{BehaviorVersion, Region};

use crate::config::AwsConfig;

/// Loads the shared SDK configuration.
pub async fn sdk_config(config: &AwsConfig) -> aws_config::SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest());
    if let Some(endpoint) = &config.endpoint_url {
        loader = loader.endpoint_url(endpoint);
    }
    // Configured region first, then the SDK's chain, then us-east-1 so a machine with no
    // AWS set-up still gets working clients (for emulators).
    let region = RegionProviderChain::first_try(config.region.clone().map(Region::new))
        .or_default_provider()
        .or_else(Region::from_static("us-east-1"));
    loader = loader.region(region);
    loader.load().await
}
