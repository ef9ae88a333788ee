CREATE TABLE `effects` (
	`op_id` text NOT NULL,
	`name` text NOT NULL,
	`payload` text NOT NULL,
	`status` text NOT NULL,
	`attempts` integer DEFAULT 0 NOT NULL,
	`next_at` integer NOT NULL,
	`lease_owner` text,
	`lease_until` integer,
	`last_error` text,
	`created_at` integer NOT NULL,
	`settled_at` integer,
	PRIMARY KEY(`op_id`, `name`),
	CONSTRAINT "effects_status_known" CHECK("effects"."status" IN ('pending', 'done', 'failed', 'dropped'))
);
--> statement-breakpoint
CREATE INDEX `effects_status_next_at_idx` ON `effects` (`status`,`next_at`);