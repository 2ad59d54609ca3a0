# Region swap us-east-1 -> us-west-2 for values copied to a disaster-recovery region.
# Swaps whole region tokens only: endpoints (rds.us-east-1.amazonaws.com), ARNs
# (arn:aws:secretsmanager:us-east-1:...), S3/ECR hosts. Availability-zone names such as
# us-east-1a are left alone on purpose: zone letters do not correspond between regions.
s/\bus-east-1\b/us-west-2/g
