# Region swap us-west-2 -> us-east-1 for values copied to a disaster-recovery region.
# Swaps whole region tokens only: endpoints (rds.us-west-2.amazonaws.com), ARNs
# (arn:aws:secretsmanager:us-west-2:...), S3/ECR hosts. Availability-zone names such as
# us-west-2a are left alone on purpose: zone letters do not correspond between regions.
s/\bus-west-2\b/us-east-1/g
