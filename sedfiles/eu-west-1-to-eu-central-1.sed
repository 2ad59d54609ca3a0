# Region swap eu-west-1 -> eu-central-1 for values copied to a disaster-recovery region.
# Swaps whole region tokens only: endpoints (rds.eu-west-1.amazonaws.com), ARNs
# (arn:aws:secretsmanager:eu-west-1:...), S3/ECR hosts. Availability-zone names such as
# eu-west-1a are left alone on purpose: zone letters do not correspond between regions.
s/\beu-west-1\b/eu-central-1/g
