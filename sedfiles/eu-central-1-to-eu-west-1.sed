# Region swap eu-central-1 -> eu-west-1 for values copied to a disaster-recovery region.
# Swaps whole region tokens only: endpoints (rds.eu-central-1.amazonaws.com), ARNs
# (arn:aws:secretsmanager:eu-central-1:...), S3/ECR hosts. Availability-zone names such as
# eu-central-1a are left alone on purpose: zone letters do not correspond between regions.
s/\beu-central-1\b/eu-west-1/g
