"""AlexNet variants with conv1..conv5 taps."""
